"""Plain text for the terminal faces (the CLI and the demo): posts, problems, the log."""

from __future__ import annotations

from socialbot.models import Delivery, Post
from socialbot.problems import Kind, Problem


def render_post(post: Post) -> str:
    """A post as the preview shows it: a header with its length and limit, then the text."""
    lines = [f"── {post.network} ── {post.length}/{post.limit}", post.text]
    lines.extend(f"   note: {note}" for note in post.notes)
    if post.images:
        from socialbot.attachments import describe

        kind = "card thumbnail" if post.attach == "card" else "image"
        lines.extend(f"   {kind} {n}: {describe(image)}" for n, image in enumerate(post.images, 1))
    return "\n".join(lines) + "\n"


def render_problem(problem: Problem) -> str:
    """One line: what, where, and the command that settles it."""
    where = " on ".join(part for part in (problem.release, problem.network) if part)
    text = f"{where}: {problem.detail}" if where and problem.release else problem.detail
    release, network = problem.release, problem.network
    if problem.kind is Kind.UNKNOWN:
        text += (
            f"; check the account, then run `socialbot resolve {release} --network {network} "
            "--posted URL` or --not-posted"
        )
    elif problem.kind is Kind.FAILED:
        text += f"; fix the cause, then run `socialbot retry {release} --network {network}`"
    elif problem.kind is Kind.CHANGED_AFTER_APPROVAL:
        text += f" (`socialbot approve {release}` or `socialbot withdraw {release}`)"
    elif problem.kind is Kind.CREDENTIALS and network:
        text = f"{network} credentials: {problem.detail} (check with `socialbot networks`)"
    return text


def format_table(rows: list[Delivery]) -> str:
    header = (
        "UPDATED (UTC)",
        "RELEASE",
        "REV",
        "NETWORK",
        "STATUS",
        "TRIES",
        "APPROVED BY",
        "URL / ERROR",
    )
    lines = [header]
    for row in rows:
        lines.append(
            (
                f"{row.updated_at:%Y-%m-%d %H:%M:%S}",
                row.release_id,
                str(row.revision or "-"),
                row.network,
                row.status.value,
                str(row.attempts),
                row.approved_by,
                (row.url or row.error or "").replace("\n", " "),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    )
