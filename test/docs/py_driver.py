"""Runs a page's Python blocks in one namespace, like a reader's session (test/docs/docs-run.test.ts).

Reads one JSON request per line on stdin: {"code", "env", "cwd", "name"}. Sets the environment and the
working directory, runs the code (its output goes to this process's stdout and stderr, which the test
sends to a log file), and answers {"ok": true} or {"ok": false} (the traceback is in the log) on fd 3.
"""

import json
import os
import sys
import traceback


def main() -> None:
    namespace: dict[str, object] = {"__name__": "__main__"}
    with os.fdopen(3, "w") as answers:
        for request_line in sys.stdin:
            request = json.loads(request_line)
            os.environ.clear()
            os.environ.update(request["env"])
            os.chdir(request["cwd"])
            ok = True
            try:
                exec(compile(request["code"], request["name"], "exec"), namespace)
            except BaseException:  # every failure of a block is reported, SystemExit too
                traceback.print_exc()
                ok = False
            sys.stdout.flush()
            sys.stderr.flush()
            answers.write(json.dumps({"ok": ok}) + "\n")
            answers.flush()


if __name__ == "__main__":
    main()
