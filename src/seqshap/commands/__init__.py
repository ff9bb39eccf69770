"""One module per ``seqshap`` subcommand; each has ``register(subparsers)``.

Adding a command = adding its module name to ``COMMANDS``.
"""

COMMANDS = [
    "train",
    "evaluate",
    "import-keras",
    "import-torch",
    "explain",
    "importance",
    "report",
    "serve",
    "faithfulness",
]
