import { a } from "./lib/a.js";
import * as ns from './lib/e.js';
export { b } from './lib/b.js';
import "./lib/c.js";
const d = import("./lib/d.js");
import React from "react";
console.log(a, ns, d);
