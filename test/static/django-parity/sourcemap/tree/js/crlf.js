console.log(2);
//# sourceMappingURL=crlf.js.map
