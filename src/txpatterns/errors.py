"""Domain errors: the CLI turns each into a clean message and a non-zero exit code."""


class TxpError(Exception):
    """Base class for errors a user can act on; the message says what to do."""


class ConfigError(TxpError):
    """A settings file, environment variable or flag holds an unusable value."""


class HeaderError(TxpError):
    """A CSV file does not start with the header the data contract requires."""

    def __init__(self, name: str, expected: tuple[str, ...], found: list[str] | None) -> None:
        shown = ",".join(found) if found is not None else "(empty file)"
        super().__init__(
            f"{name}: wrong header.\n  expected: {','.join(expected)}\n  found:    {shown}"
        )
        self.name = name
        self.expected = expected
        self.found = found


class StoreError(TxpError):
    """An input or output location cannot be read or written."""
