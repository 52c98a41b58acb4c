"""The ``actionclip`` command line: a thin layer over the Python API.

Each sub-command lives in ``actionclip/commands/<name>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int``. Command modules must not import torch at
module level, so that ``--help`` answers instantly.

The seed's form ``actionclip --video V --text A --text B`` (no sub-command) is rewritten to
``actionclip classify V --text A --text B``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order here is the order shown in --help.
COMMANDS = ["classify", "index", "search", "timeline", "watch", "serve", "eval", "train", "models", "download",
            "export", "bench", "detection_map", "eval_timeline", "eval_retrieval", "eval_open_vocab"]


def _legacy_argv(argv: list[str]) -> list[str]:
    """Turn the seed's ``--video V`` form into ``classify V``."""
    if argv and argv[0] in COMMANDS or any(a in ("-h", "--help") for a in argv[:1]):
        return argv
    videos, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--video", "-v") and i + 1 < len(argv):
            videos.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--video="):
            videos.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    if videos:
        return ["classify", *videos, *rest]
    return argv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actionclip",
        description="Recognise and locate actions named in words in videos (ActionCLIP).",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"actionclip.cli.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"actionclip.cli.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    from actionclip.cli.options import add_verbose

    for command in sub.choices.values():  # one --verbose for every command (watch words its own)
        if not any("--verbose" in action.option_strings for action in command._actions):
            add_verbose(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(_legacy_argv(argv))
    if args.version:
        from actionclip import __version__

        print(__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from actionclip.chatter import quiet
    from actionclip.errors import ActionCLIPError

    try:
        with quiet(verbose=getattr(args, "verbose", False)):  # set before any library is imported
            return int(args.func(args) or 0)
    except ActionCLIPError as exc:
        print(f"actionclip: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("actionclip: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `actionclip classify ... | head`): stop quietly, as Unix tools do,
        # and keep Python from complaining again while flushing stdout at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
