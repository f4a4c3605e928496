"""The migration files stay runnable by hand: ordered, and each recording itself."""

from __future__ import annotations

from chatsessions.db.migrate import available_migrations


def test_versions_are_consecutive() -> None:
    versions = [int(m.version) for m in available_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_each_file_records_itself_for_hand_runs() -> None:
    # Without its own record, a database built by running the files by hand would look
    # unmigrated, and the service would try to apply them again at start-up.
    for m in available_migrations():
        record = (
            "insert into chatsessions.schema_migrations (version, name) "
            f"values ('{m.version}', '{m.name}')"
        )
        assert record in " ".join(m.sql.split()), f"{m.version}_{m.name} does not record itself"


def test_no_psql_meta_commands() -> None:
    # A hosted SQL editor runs plain SQL only.
    for m in available_migrations():
        assert not any(line.lstrip().startswith("\\") for line in m.sql.splitlines()), m.name
