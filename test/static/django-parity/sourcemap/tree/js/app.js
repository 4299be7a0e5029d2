console.log(1);
//# sourceMappingURL=app.js.map
