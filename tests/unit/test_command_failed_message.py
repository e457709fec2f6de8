"""A failed command's message stays readable however much the command printed."""

from kolapy.errors import MESSAGE_OUTPUT_LIMIT, CommandFailedError


def test_message_keeps_the_tail_of_huge_output_and_the_exception_keeps_all() -> None:
    out = "x" * (3 * MESSAGE_OUTPUT_LIMIT) + "THE-END"
    err = CommandFailedError("yes", 1, out, "short", "failed")
    msg = str(err)
    assert len(msg) < 2 * MESSAGE_OUTPUT_LIMIT
    assert "THE-END" in msg and "earlier characters left out" in msg
    assert "--- stderr ---\nshort" in msg
    assert err.stdout == out


def test_small_output_is_shown_whole() -> None:
    msg = str(CommandFailedError("ls", 2, "a\nb\n", "", "failed"))
    assert msg == "command 'ls' failed: exit code 2\n--- stdout ---\na\nb\n--- stderr ---\n"
