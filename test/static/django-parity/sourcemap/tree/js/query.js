a();
//# sourceMappingURL=data:x
//# sourceMappingURL=../css/app.css.map?v=1
