"""`python -m zerorun.engine_run [-m module | script] [args]`: what a rank of `zerorun --engine
zerorun` runs. Puts zerorun's DeepSpeed-compatible package (zerorun/compat: `deepspeed` and its
package metadata, backed by zerorun.torch) first on PYTHONPATH, then execs the interpreter with
the command line it was given minus this module, so the script runs exactly as `python script`
would (sys.path[0], sys.argv, interpreter options) and its `import deepspeed`, and that of HF
Trainer, Accelerate and Lightning, gets zerorun's engine. Child processes inherit the path.
"""

import os
import sys

COMPAT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compat")


def command(orig_argv, me):
    """orig_argv without "-m <me>" (or "-m<me>"): the interpreter, its options, the program."""
    argv = list(orig_argv)
    for i, a in enumerate(argv):
        if a == "-m" and i + 1 < len(argv) and argv[i + 1] == me:
            return argv[:i] + argv[i + 2:]
        if a == "-m" + me:
            return argv[:i] + argv[i + 1:]
    raise SystemExit(f"zerorun.engine_run: cannot find -m {me} in {orig_argv}")


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m zerorun.engine_run (-m module | script.py) [args]")
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = COMPAT + (os.pathsep + path if path else "")
    os.environ.setdefault("ZERORUN_ENGINE", "zerorun")
    argv = command(sys.orig_argv, __spec__.name)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
