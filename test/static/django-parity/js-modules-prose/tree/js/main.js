/* This file used to export function wireCarousel itself; now
   it comes from the module below. */
import { a } from './lib/a.js';
IMPORT("./lib/a.js");
const s = "import x from \"./lib/a.js\";";
