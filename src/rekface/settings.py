"""Every REKFACE_* environment variable, read in one place.

Settings are read when asked for (``Settings.from_env()``), never at import time, so tests and the
bootstrap can build them with explicit values.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# The repository's own models directory: src/rekface/settings.py -> <repo>/layers/models.
REPO_MODELS_DIR = Path(__file__).resolve().parents[2] / "layers" / "models"
LAMBDA_LAYER_MODELS_DIR = Path("/opt/models")
SEARCH_BACKENDS = ("memory", "s3vectors", "pgvector")
# pgvector's hnsw.ef_search: candidates kept while walking the graph (pgvector allows 1-1000).
# 200 measured: same-person recall 100 % / 99.83 % on real faces at 1 M, p50 ~9-13 ms (README).
DEFAULT_PG_EF_SEARCH = 200
PG_EF_SEARCH_RANGE = (1, 1000)
STORES = ("sqlite", "dynamodb", "postgres")
# The PostgreSQL store's connections per process: one per serving thread is enough (each request
# holds one for a few statements at most).
DEFAULT_PG_POOL_SIZE = 10
# A statement running longer than this is cancelled by the server (a lock wait included), so a
# stuck database surfaces as an error instead of a request that never ends.
DEFAULT_PG_STATEMENT_TIMEOUT_MS = 30_000


def default_data_dir(store: str, env: dict[str, str]) -> Path:
    """Where REKFACE_DATA_DIR points by default. Only the SQLite store keeps its data there, so only
    it asks the system for the home directory: ``Path.home()`` fails for a uid with no passwd entry
    and no HOME (Lambda's runtime, a container run as an arbitrary uid). Other stores use $HOME when
    it is set (the CLI's `vectors move` checkpoints), else the temporary directory."""
    if store == "sqlite":
        return Path.home() / ".rekface"
    home = env.get("HOME")
    return Path(home) / ".rekface" if home else Path(tempfile.gettempdir()) / "rekface"


def _env_int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _at_least(low: int, name: str, env: dict[str, str], default: int) -> int:
    value = _env_int(env, name, default)
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return value


def pg_ef_search(value: int) -> int:
    low, high = PG_EF_SEARCH_RANGE
    if not low <= value <= high:
        raise ValueError(f"REKFACE_PG_EF_SEARCH must be between {low} and {high}, got {value}")
    return value


# The built-in recognizer pack's version (dlib's ResNet): the default, and the version of every
# collection stored before packs existed. Here, not in rekface.engine.packs, so that the stores
# (Lambda's data functions) never import the engine.
BUILTIN_FACE_MODEL_VERSION = "1.0"


def _paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in raw.split(os.pathsep) if p)


def face_model_version(value: str) -> str:
    """The API's pattern for FaceModelVersion: [0-9.]+ (a pack's ``face_model_version``)."""
    if not re.fullmatch(r"[0-9.]+", value):
        raise ValueError(f"REKFACE_FACE_MODEL_VERSION must match [0-9.]+, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    models_dir: Path | None = None  # None: resolve REKFACE_MODELS_DIR, /opt/models, layers/models
    # Recognizer packs added to the built-in ones (REKFACE_PACKS_DIR, os.pathsep-separated: each a
    # pack folder or a folder of packs), and the face model version new collections get and
    # CompareFaces uses (REKFACE_FACE_MODEL_VERSION; see rekface.engine.packs).
    packs_dirs: tuple[Path, ...] = ()
    face_model_version: str = BUILTIN_FACE_MODEL_VERSION
    region: str = "us-east-1"
    account_id: str = "000000000000"
    store: str = "sqlite"  # "sqlite" (rekface serve), "dynamodb" (AWS) or "postgres" (replicas)
    data_dir: Path = field(default_factory=lambda: Path.home() / ".rekface")
    table_name: str = "rekface"
    # Secret that signs pagination tokens (HMAC); "" when REKFACE_TOKEN_SECRET is unset (the
    # bootstrap then picks one per store: the PostgreSQL store keeps a random one in its database,
    # shared by every replica). The AWS stack sets a per-deployment secret.
    token_secret: str = ""
    # onnxruntime intra-op threads per session (0 = onnxruntime's default: one per core).
    threads: int = 0
    # DynamoDB table of the S3 flows' idempotency records (AWS only; the CDK stack sets it).
    idempotency_table: str = ""
    # Face search backend (issue 13): "memory" (exact, in process; default), "s3vectors" (one
    # vector index per collection in REKFACE_VECTOR_BUCKET) or "pgvector" (REKFACE_PG_DSN).
    search: str = "memory"
    vector_bucket: str = ""
    vector_index_prefix: str = "rekface-"
    pg_dsn: str = ""
    pg_ef_search: int = DEFAULT_PG_EF_SEARCH
    # The PostgreSQL store (REKFACE_STORE=postgres, at REKFACE_PG_DSN): connections per process
    # (replicas x this must stay under the server's max_connections) and the longest a statement
    # may run before the server cancels it (ms; 0: the server's own setting).
    pg_pool_size: int = DEFAULT_PG_POOL_SIZE
    pg_statement_timeout_ms: int = DEFAULT_PG_STATEMENT_TIMEOUT_MS
    # Images decoded at once per process (REKFACE_MAX_DECODES): each may take up to
    # rekface.engine.decode.DECODE_BUDGET (256 MB), so 2 keep 4 worst-case requests under 1 GB.
    max_decodes: int = 2

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        region = env.get("REKFACE_REGION") or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        models = env.get("REKFACE_MODELS_DIR")
        data_dir = env.get("REKFACE_DATA_DIR")
        store = env.get("REKFACE_STORE", "sqlite")
        if store not in STORES:
            raise ValueError(f"REKFACE_STORE must be one of {STORES}, got {store!r}")
        search = env.get("REKFACE_SEARCH") or "memory"
        if search not in SEARCH_BACKENDS:
            raise ValueError(f"REKFACE_SEARCH must be one of {SEARCH_BACKENDS}, got {search!r}")
        return cls(
            models_dir=Path(models) if models else None,
            packs_dirs=_paths(env.get("REKFACE_PACKS_DIR", "")),
            face_model_version=face_model_version(
                env.get("REKFACE_FACE_MODEL_VERSION") or BUILTIN_FACE_MODEL_VERSION
            ),
            region=region or "us-east-1",
            account_id=env.get("REKFACE_ACCOUNT_ID") or "000000000000",
            store=store,
            data_dir=Path(data_dir) if data_dir else default_data_dir(store, env),
            table_name=env.get("REKFACE_TABLE_NAME") or "rekface",
            token_secret=env.get("REKFACE_TOKEN_SECRET") or "",
            threads=_env_int(env, "REKFACE_THREADS", 0),
            idempotency_table=env.get("REKFACE_IDEMPOTENCY_TABLE") or "",
            search=search,
            vector_bucket=env.get("REKFACE_VECTOR_BUCKET") or "",
            vector_index_prefix=env.get("REKFACE_VECTOR_INDEX_PREFIX") or "rekface-",
            pg_dsn=env.get("REKFACE_PG_DSN") or "",
            pg_ef_search=pg_ef_search(_env_int(env, "REKFACE_PG_EF_SEARCH", DEFAULT_PG_EF_SEARCH)),
            pg_pool_size=_at_least(1, "REKFACE_PG_POOL_SIZE", env, DEFAULT_PG_POOL_SIZE),
            pg_statement_timeout_ms=_at_least(
                0, "REKFACE_PG_STATEMENT_TIMEOUT_MS", env, DEFAULT_PG_STATEMENT_TIMEOUT_MS
            ),
            max_decodes=_at_least(1, "REKFACE_MAX_DECODES", env, 2),
        )

    def model_dirs(self) -> list[Path]:
        """Where models are looked for, in order: REKFACE_MODELS_DIR, the Lambda layer, the repo."""
        if self.models_dir is not None:
            return [self.models_dir]
        return [LAMBDA_LAYER_MODELS_DIR, REPO_MODELS_DIR]


@dataclass(frozen=True)
class ServeSettings:
    """`rekface serve`'s network-facing settings (REKFACE_* variables; the CLI's flags override)."""

    credentials: Path | None = None  # AWS shared-credentials INI: SigV4 required when set
    allow_anonymous: bool = False  # serve without credentials on a non-loopback address
    metrics_address: str = ""  # HOST:PORT of a separate /metrics listener ("" = none)
    max_inflight: int = 0  # image operations at work at once (0 = one per core)
    max_queue: int = -1  # image operations waiting for a turn (-1 = twice max_inflight)
    max_connections: int = 1000
    idle_timeout: float = 60.0  # seconds a keep-alive connection may sit without a request
    request_timeout: float = 60.0  # seconds for a request's headers and body to arrive

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServeSettings:
        env = dict(os.environ if env is None else env)
        credentials = env.get("REKFACE_CREDENTIALS")
        return cls(
            credentials=Path(credentials) if credentials else None,
            allow_anonymous=env.get("REKFACE_ALLOW_ANONYMOUS", "").lower() in ("1", "true", "yes"),
            metrics_address=env.get("REKFACE_METRICS_ADDRESS") or "",
            max_inflight=_at_least(0, "REKFACE_MAX_INFLIGHT", env, 0),
            max_queue=_at_least(-1, "REKFACE_MAX_QUEUE", env, -1),
            max_connections=_at_least(1, "REKFACE_MAX_CONNECTIONS", env, 1000),
            idle_timeout=float(_at_least(1, "REKFACE_IDLE_TIMEOUT", env, 60)),
            request_timeout=float(_at_least(1, "REKFACE_REQUEST_TIMEOUT", env, 60)),
        )
