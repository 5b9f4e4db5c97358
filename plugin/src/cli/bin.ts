#!/usr/bin/env node
// Entry point of the `ctensors` executable.
import { discardWhenClosed } from "./closed-output.js";
import { main } from "./main.js";

discardWhenClosed(process.stdout);
discardWhenClosed(process.stderr);

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
