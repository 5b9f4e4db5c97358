// A test hook, inert unless CTENSORS_TEST_PAUSE_AT is set: the exit-path tests (plugin/test/
// exit-paths.test.ts) stop a real `ctensors` process at a chosen step of writing its output, then
// signal it. Values: `file:N` pauses before the N-th output file of the process is published (its
// data fully written), `folder` before a staged output folder is renamed into place. When it pauses
// it prints one line "ctensors: test pause at <point>" to stderr and waits (forever: the test ends it).

let files = 0;
/** Keeps the paused promise (and so the writer's open files) reachable: otherwise the garbage collector would close them. */
const paused: unknown[] = [];

/** Called at each publishing step; returns at once unless the hook asks to pause there. */
export async function testPause(point: "file" | "folder"): Promise<void> {
  const wanted = process.env.CTENSORS_TEST_PAUSE_AT;
  if (!wanted) return;
  const here = point === "file" ? `file:${++files}` : "folder";
  if (here !== wanted) return;
  process.stderr.write(`ctensors: test pause at ${here}\n`);
  await new Promise<never>((resolve) => {
    paused.push(
      resolve,
      setInterval(() => {}, 1 << 30),
    );
  });
}
