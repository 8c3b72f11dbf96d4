"""The state ECR keeps beside the blobs: repositories, images, tags, settings, scan findings.

SQLite in the data directory, so `--data` survives restarts; one connection behind a lock (the
front server is threaded, and every write is a short transaction). Keys carry account and region so
more than one registry can live in one local AWS.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS repositories (
  account TEXT, region TEXT, name TEXT, created_at REAL, mutability TEXT, filters TEXT,
  scan_on_push INTEGER, encryption TEXT, PRIMARY KEY (account, region, name));
CREATE TABLE IF NOT EXISTS images (
  account TEXT, region TEXT, repo TEXT, digest TEXT, manifest BLOB, media_type TEXT,
  config_media_type TEXT, artifact_type TEXT, subject TEXT, size INTEGER, pushed_at REAL,
  PRIMARY KEY (account, region, repo, digest));
CREATE TABLE IF NOT EXISTS tags (
  account TEXT, region TEXT, repo TEXT, tag TEXT, digest TEXT, PRIMARY KEY (account, region, repo, tag));
CREATE TABLE IF NOT EXISTS blob_refs (
  account TEXT, region TEXT, repo TEXT, manifest TEXT, blob TEXT,
  PRIMARY KEY (account, region, repo, manifest, blob));
CREATE INDEX IF NOT EXISTS blob_refs_blob ON blob_refs (account, region, repo, blob);
CREATE TABLE IF NOT EXISTS settings (
  account TEXT, region TEXT, name TEXT, value TEXT, PRIMARY KEY (account, region, name));
CREATE TABLE IF NOT EXISTS findings (
  account TEXT, region TEXT, repo TEXT, digest TEXT, findings TEXT,
  PRIMARY KEY (account, region, repo, digest));
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS storage (
  account TEXT, region TEXT, repo TEXT, digest TEXT, status TEXT, archived_at REAL,
  activated_at REAL, ready_at REAL, PRIMARY KEY (account, region, repo, digest));
"""
# Image statuses (ECR's ImageStatus). No `storage` row means ACTIVE in the standard class.
ACTIVE, ARCHIVED, ACTIVATING = "ACTIVE", "ARCHIVED", "ACTIVATING"


@dataclass(frozen=True)
class Scope:
    """One registry: an account in a region."""

    account: str
    region: str


@dataclass(frozen=True)
class RepositoryRecord:
    name: str
    created_at: float
    mutability: str
    filters: tuple[str, ...]
    scan_on_push: bool
    encryption: str


@dataclass(frozen=True)
class ImageRecord:
    repo: str
    digest: str
    manifest: bytes
    media_type: str
    config_media_type: str | None
    artifact_type: str | None
    subject: str | None
    size: int
    pushed_at: float
    tags: tuple[str, ...]
    status: str = ACTIVE  # ACTIVE, ARCHIVED (archive storage class) or ACTIVATING (being restored)
    last_archived_at: float | None = None
    last_activated_at: float | None = None


class Store:
    """SQLite-backed ECR state; every method is one short transaction."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- secrets -------------------------------------------------------------------------
    def secret(self, name: str, make: str) -> str:
        """A value that must stay stable across restarts with the same data dir."""
        with self._lock:
            row = self._db.execute("SELECT value FROM secrets WHERE name=?", (name,)).fetchone()
            if row:
                return row[0]
            self._db.execute("INSERT INTO secrets VALUES (?, ?)", (name, make))
            return make

    # --- repositories --------------------------------------------------------------------
    def add_repository(self, scope: Scope, rec: RepositoryRecord) -> bool:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO repositories VALUES (?,?,?,?,?,?,?,?)",
                    (
                        scope.account,
                        scope.region,
                        rec.name,
                        rec.created_at,
                        rec.mutability,
                        json.dumps(list(rec.filters)),
                        int(rec.scan_on_push),
                        rec.encryption,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            return True

    def repository(self, scope: Scope, name: str) -> RepositoryRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT name, created_at, mutability, filters, scan_on_push, encryption FROM repositories "
                "WHERE account=? AND region=? AND name=?",
                (scope.account, scope.region, name),
            ).fetchone()
        return _repo(row) if row else None

    def repositories(self, scope: Scope) -> list[RepositoryRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT name, created_at, mutability, filters, scan_on_push, encryption FROM repositories "
                "WHERE account=? AND region=? ORDER BY name",
                (scope.account, scope.region),
            ).fetchall()
        return [_repo(r) for r in rows]

    def set_mutability(self, scope: Scope, name: str, mutability: str, filters: tuple[str, ...]) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE repositories SET mutability=?, filters=? WHERE account=? AND region=? AND name=?",
                (mutability, json.dumps(list(filters)), scope.account, scope.region, name),
            )

    def delete_repository(self, scope: Scope, name: str) -> None:
        with self._lock:
            for table, col in (
                ("repositories", "name"),
                ("images", "repo"),
                ("tags", "repo"),
                ("blob_refs", "repo"),
                ("findings", "repo"),
                ("storage", "repo"),
            ):
                self._db.execute(
                    f"DELETE FROM {table} WHERE account=? AND region=? AND {col}=?",
                    (scope.account, scope.region, name),
                )

    # --- images --------------------------------------------------------------------------
    def image(self, scope: Scope, repo: str, digest: str) -> ImageRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT repo, digest, manifest, media_type, config_media_type, artifact_type, subject, size, "
                "pushed_at FROM images WHERE account=? AND region=? AND repo=? AND digest=?",
                (scope.account, scope.region, repo, digest),
            ).fetchone()
            return self._image(scope, row) if row else None

    def images(self, scope: Scope, repo: str) -> list[ImageRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT repo, digest, manifest, media_type, config_media_type, artifact_type, subject, size, "
                "pushed_at FROM images WHERE account=? AND region=? AND repo=? ORDER BY pushed_at, digest",
                (scope.account, scope.region, repo),
            ).fetchall()
            return [self._image(scope, r) for r in rows]

    def referrers(self, scope: Scope, repo: str, subject: str) -> list[ImageRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT repo, digest, manifest, media_type, config_media_type, artifact_type, subject, size, "
                "pushed_at FROM images WHERE account=? AND region=? AND repo=? AND subject=? "
                "ORDER BY pushed_at, digest",
                (scope.account, scope.region, repo, subject),
            ).fetchall()
            return [self._image(scope, r) for r in rows]

    def tag_digest(self, scope: Scope, repo: str, tag: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT digest FROM tags WHERE account=? AND region=? AND repo=? AND tag=?",
                (scope.account, scope.region, repo, tag),
            ).fetchone()
        return row[0] if row else None

    def tags(self, scope: Scope, repo: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT tag FROM tags WHERE account=? AND region=? AND repo=? ORDER BY tag",
                (scope.account, scope.region, repo),
            ).fetchall()
        return [r[0] for r in rows]

    def put_image(self, scope: Scope, rec: ImageRecord, blobs: tuple[str, ...]) -> None:
        """Insert the image if new (keeping its first pushedAt) and its blob references."""
        a, r = scope.account, scope.region
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    a,
                    r,
                    rec.repo,
                    rec.digest,
                    rec.manifest,
                    rec.media_type,
                    rec.config_media_type,
                    rec.artifact_type,
                    rec.subject,
                    rec.size,
                    rec.pushed_at,
                ),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO blob_refs VALUES (?,?,?,?,?)",
                [(a, r, rec.repo, rec.digest, b) for b in blobs],
            )

    def set_tag(self, scope: Scope, repo: str, tag: str, digest: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO tags VALUES (?,?,?,?,?)",
                (scope.account, scope.region, repo, tag, digest),
            )

    def remove_tag(self, scope: Scope, repo: str, tag: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM tags WHERE account=? AND region=? AND repo=? AND tag=?",
                (scope.account, scope.region, repo, tag),
            )

    def remove_image(self, scope: Scope, repo: str, digest: str) -> None:
        a, r = scope.account, scope.region
        with self._lock:
            for table, col in (
                ("images", "digest"),
                ("tags", "digest"),
                ("blob_refs", "manifest"),
                ("findings", "digest"),
                ("storage", "digest"),
            ):
                self._db.execute(
                    f"DELETE FROM {table} WHERE account=? AND region=? AND repo=? AND {col}=?",
                    (a, r, repo, digest),
                )

    def blob_referenced(self, scope: Scope, repo: str, blob: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM blob_refs WHERE account=? AND region=? AND repo=? AND blob=? LIMIT 1",
                (scope.account, scope.region, repo, blob),
            ).fetchone()
        return row is not None

    def _image(self, scope: Scope, row: tuple) -> ImageRecord:
        tags = self._db.execute(
            "SELECT tag FROM tags WHERE account=? AND region=? AND repo=? AND digest=? ORDER BY tag",
            (scope.account, scope.region, row[0], row[1]),
        ).fetchall()
        status, archived_at, activated_at = self._storage(scope, row[0], row[1])
        return ImageRecord(
            status=status,
            last_archived_at=archived_at,
            last_activated_at=activated_at,
            repo=row[0],
            digest=row[1],
            manifest=bytes(row[2]),
            media_type=row[3],
            config_media_type=row[4],
            artifact_type=row[5],
            subject=row[6],
            size=row[7],
            pushed_at=row[8],
            tags=tuple(t[0] for t in tags),
        )

    # --- storage class (archive) ---------------------------------------------------------
    def _storage(self, scope: Scope, repo: str, digest: str) -> tuple[str, float | None, float | None]:
        """(status, last archived, last activated); a restore whose time has come is ACTIVE now."""
        row = self._db.execute(
            "SELECT status, archived_at, activated_at, ready_at FROM storage "
            "WHERE account=? AND region=? AND repo=? AND digest=?",
            (scope.account, scope.region, repo, digest),
        ).fetchone()
        if row is None:
            return ACTIVE, None, None
        status, archived_at, activated_at, ready_at = row
        if status == ACTIVATING and ready_at is not None and ready_at <= time.time():
            status, activated_at = ACTIVE, ready_at
            self._set_storage(scope, repo, digest, ACTIVE, archived_at, activated_at, None)
        return status, archived_at, activated_at

    def _set_storage(
        self,
        scope: Scope,
        repo: str,
        digest: str,
        status: str,
        archived_at: float | None,
        activated_at: float | None,
        ready_at: float | None,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO storage VALUES (?,?,?,?,?,?,?,?)",
            (scope.account, scope.region, repo, digest, status, archived_at, activated_at, ready_at),
        )

    def archive(self, scope: Scope, repo: str, digest: str, at: float) -> None:
        """Moves an image to the archive storage class (ARCHIVED from `at`)."""
        with self._lock:
            _, _, activated_at = self._storage(scope, repo, digest)
            self._set_storage(scope, repo, digest, ARCHIVED, at, activated_at, None)

    def restore(self, scope: Scope, repo: str, digest: str, ready_at: float) -> None:
        """Starts a restore: ACTIVATING until `ready_at`, ACTIVE from then on."""
        with self._lock:
            _, archived_at, activated_at = self._storage(scope, repo, digest)
            self._set_storage(scope, repo, digest, ACTIVATING, archived_at, activated_at, ready_at)

    def activate(self, scope: Scope, repo: str, digest: str, at: float) -> None:
        """ACTIVE now (a re-push of an archived image restores it at once)."""
        with self._lock:
            _, archived_at, _ = self._storage(scope, repo, digest)
            self._set_storage(scope, repo, digest, ACTIVE, archived_at, at, None)

    def finish_restores(self, at: float) -> int:
        """Every restore in progress completes now (the control API's way past ECR's wait)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE storage SET status=?, activated_at=?, ready_at=NULL WHERE status=?",
                (ACTIVE, at, ACTIVATING),
            )
            return cursor.rowcount

    def blob_statuses(self, scope: Scope, repo: str, blob: str) -> set[str]:
        """The statuses of the images in `repo` whose manifests reference `blob`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT manifest FROM blob_refs WHERE account=? AND region=? AND repo=? AND blob=?",
                (scope.account, scope.region, repo, blob),
            ).fetchall()
            return {self._storage(scope, repo, r[0])[0] for r in rows}

    # --- settings and findings -----------------------------------------------------------
    def setting(self, scope: Scope, name: str, default: str) -> str:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM settings WHERE account=? AND region=? AND name=?",
                (scope.account, scope.region, name),
            ).fetchone()
        return row[0] if row else default

    def set_setting(self, scope: Scope, name: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO settings VALUES (?,?,?,?)", (scope.account, scope.region, name, value)
            )

    def findings(self, scope: Scope, repo: str, digest: str) -> list[dict] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT findings FROM findings WHERE account=? AND region=? AND repo=? AND digest=?",
                (scope.account, scope.region, repo, digest),
            ).fetchone()
        return json.loads(row[0]) if row else None

    def set_findings(self, scope: Scope, repo: str, digest: str, findings: list[dict]) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO findings VALUES (?,?,?,?,?)",
                (scope.account, scope.region, repo, digest, json.dumps(findings)),
            )


def _repo(row: tuple) -> RepositoryRecord:
    return RepositoryRecord(
        name=row[0],
        created_at=row[1],
        mutability=row[2],
        filters=tuple(json.loads(row[3])),
        scan_on_push=bool(row[4]),
        encryption=row[5],
    )


def now() -> float:
    return time.time()
