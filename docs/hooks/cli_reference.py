"""The command-line reference page, written from ``seqshap.cli``'s own argparse parsers at build
time: every subcommand, its usage line, every option with its default and help, its examples.
A new option appears on the site the moment it is added to the parser."""

from __future__ import annotations

import argparse
import html

INTRO = """# Command line

One command, `seqshap`, with a subcommand per job (`python -m seqshap` is the same command
without the script on `PATH`); every `--help` ends with an example. `--model DIR` defaults to the
shipped model; `--json` gives machine-readable output; progress bars go to stderr. Exit codes:
**0** success, **2** bad usage, **1** any other error, printed as one line on stderr
(`seqshap --debug COMMAND ...` shows the traceback). What each bad input gets (a NaN-producing
model, a `--resume` on other data, a crafted model directory, a zip bomb, a text with no words,
...): [Bad inputs](../bad-inputs.md).

This page is generated from the argument parsers (`seqshap.cli.build_parser()`) when the site is
built, so it lists exactly what `seqshap COMMAND --help` says.
"""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage line at a fixed width, whatever the terminal building the site is."""
    formatter = argparse.HelpFormatter(parser.prog, width=80, max_help_position=32)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _invocation(action: argparse.Action) -> str:
    if not action.option_strings:  # a positional argument
        return action.metavar or action.dest
    metavar = ""
    if action.nargs != 0:
        if action.metavar is not None:
            metavar = " " + str(action.metavar)
        elif action.choices is not None:
            metavar = " {" + ",".join(map(str, action.choices)) + "}"
        else:
            metavar = " " + action.dest.upper()
    return ", ".join(action.option_strings) + metavar


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    return str(action.default)


def _options_table(parser: argparse.ArgumentParser) -> str:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = action.help or ""
        if action.choices is not None and action.metavar is not None:
            text += (" " if text else "") + "(one of: " + ", ".join(map(str, action.choices)) + ")"
        rows.append(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>".format(
                html.escape(_invocation(action)),
                f"<code>{html.escape(_default(action))}</code>" if _default(action) else "",
                html.escape(text),
            )
        )
    head = "<tr><th>argument</th><th>default</th><th>what it does</th></tr>"
    return "<table>\n<thead>" + head + "</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def _examples(parser: argparse.ArgumentParser) -> str:
    epilog = (parser.epilog or "").strip()
    lines = epilog.splitlines()
    if lines and lines[0].rstrip(":").strip().lower() in {"example", "examples"}:
        lines = lines[1:]
    body = "\n".join(line[2:] if line.startswith("  ") else line for line in lines).strip()
    return f"Examples (from `--help`):\n\n```bash\n{body}\n```\n" if body else ""


def render(parser: argparse.ArgumentParser) -> str:
    """Markdown for the whole command line, from the top-level parser."""
    commands = _subparsers(parser)
    listing = "\n".join(
        f"| [`seqshap {name}`](#seqshap-{name}) | {html.escape((sub.description or '').strip())} |"
        for name, sub in commands.items()
    )
    parts = [INTRO, "| command | what it does |\n|---|---|\n" + listing + "\n"]
    parts += ["## `seqshap`\n", f"```text\n{_usage(parser)}\n```\n", _options_table(parser), ""]
    for name, sub in commands.items():
        parts += [
            f"## `seqshap {name}`\n",
            html.escape((sub.description or "").strip()) + "\n",
            f"```text\n{_usage(sub)}\n```\n",
            _options_table(sub),
            "",
            _examples(sub),
        ]
    return "\n".join(parts)
