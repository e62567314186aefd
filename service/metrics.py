"""Prometheus metrics. BentoML runs workers with PROMETHEUS_MULTIPROC_DIR set; bedside's own
/metrics route aggregates these across processes (BentoML's per-path metrics are off: they
label by the raw URL path). Labels carry only allow-listed task names, route templates,
outcomes and versions: never text or identifiers."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# ~1 ms to 5 s: a compact encoder answers in milliseconds, a full queue in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384)

REQUEST_SECONDS = Histogram(
    "bedside_request_duration_seconds",
    "Predict request latency by the version that answered",
    ["task", "endpoint", "version"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_SECONDS = Histogram(
    "bedside_queue_wait_seconds", "Time a request waited for its batch", ["task"], buckets=LATENCY_BUCKETS
)
TOKENIZE_SECONDS = Histogram(
    "bedside_tokenize_duration_seconds", "Tokenisation time per request", ["task"], buckets=LATENCY_BUCKETS
)
FORWARD_SECONDS = Histogram(
    "bedside_forward_duration_seconds", "Encoder + heads forward time per batch", buckets=LATENCY_BUCKETS
)
REQUESTS = Counter("bedside_requests_total", "Predict requests by task and outcome", ["task", "outcome"])
BATCH_ROWS = Histogram("bedside_batch_rows", "Rows per encoder forward", buckets=SIZE_BUCKETS)
BATCH_TOKENS = Histogram("bedside_batch_tokens", "Real (unpadded) tokens per encoder forward", buckets=TOKEN_BUCKETS)
BATCH_TASKS = Histogram("bedside_batch_adapters", "Distinct adapters per encoder forward", buckets=SIZE_BUCKETS)
BATCH_TASK_ROWS = Histogram(
    "bedside_batch_task_rows", "Rows of one task in an encoder forward", ["task"], buckets=SIZE_BUCKETS
)
QUEUE_ROWS = Gauge("bedside_queue_rows", "Rows waiting for the encoder", multiprocess_mode="livesum")
INFLIGHT = Gauge("bedside_inflight_requests", "Predict requests in progress", multiprocess_mode="livesum")
ADAPTER_LOADS = Counter("bedside_adapter_loads_total", "Adapter version loads", ["task", "outcome"])
SWAPS = Counter("bedside_adapter_swaps_total", "Active adapter switches", ["task", "outcome"])
SWAP_SECONDS = Histogram(
    "bedside_adapter_swap_duration_seconds", "Load + switch time of a new version", buckets=LATENCY_BUCKETS
)
QUANTISED_CHECK_FLIPS = Counter(
    "bedside_quantised_check_flips_total",
    "Activation checks where the quantised served model answered a smoke example differently "
    "and the fp32 reference check passed",
)
RESIDENT = Gauge("bedside_resident_adapters", "Adapter versions resident in memory", multiprocess_mode="livemax")
ACTIVE = Gauge(
    "bedside_active_adapter_info",
    "1 for the version serving each task",
    ["task", "version"],
    multiprocess_mode="livemax",
)
TASK_READY = Gauge("bedside_task_ready", "1 when a task can answer", ["task"], multiprocess_mode="livemax")
DEVICE_MEMORY = Gauge("bedside_device_memory_bytes", "GPU memory allocated by the model", multiprocess_mode="livemax")
ADMIN_ACTIONS = Counter(
    "bedside_admin_actions_total", "Admin API actions by outcome (ok, refused, denied, failed)", ["action", "outcome"]
)
HTTP_REQUESTS = Counter(
    "bedside_http_requests_total", "HTTP requests by route template, method and status", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "bedside_http_request_duration_seconds", "HTTP request time by route template", ["route"], buckets=LATENCY_BUCKETS
)

# -- rollout: shadow and canary versions (labels: task, versions, fixed words; never request text)
ROLLOUT = Gauge(
    "bedside_rollout_info",
    "1 for a version running as a task's shadow or canary candidate",
    ["task", "version", "mode"],
    multiprocess_mode="livemax",
)
CANARY_PERCENT = Gauge(
    "bedside_canary_percent",
    "Share of a task's requests its canary answers",
    ["task", "version"],
    multiprocess_mode="livemax",
)
VERSION_REQUESTS = Counter(
    "bedside_version_requests_total",
    "Predict requests by the version chosen to answer, its role (active, canary) and outcome",
    ["task", "version", "role", "outcome"],
)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
ANSWER_SCORE = Histogram(
    "bedside_answer_score",
    "Scores answered, by version: the answered label's probability (an entity's score for token tasks)",
    ["task", "version"],
    buckets=SCORE_BUCKETS,
)
SHADOW_REQUESTS = Counter(
    "bedside_shadow_requests_total",
    "Requests a shadow version ran on, by outcome (compared, dropped under load, failed, timeout)",
    ["task", "active", "candidate", "outcome"],
)
SHADOW_ITEMS = Counter(
    "bedside_shadow_items_total",
    "Sequence and pair items compared, by whether the shadow's label agrees with the active one's",
    ["task", "active", "candidate", "agreement"],
)
SHADOW_ENTITIES = Counter(
    "bedside_shadow_entities_total",
    "Token tasks: entities found by both versions (same span and type), by the active only, by the shadow only",
    ["task", "active", "candidate", "found_by"],
)
SHADOW_PROB_DIFF = Histogram(
    "bedside_shadow_probability_difference",
    "Mean absolute difference of the label probabilities, shadow vs active, per item",
    ["task", "active", "candidate"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0),
)
SHADOW_SCORE = Histogram(
    "bedside_shadow_candidate_score",
    "Scores the shadow version would have answered",
    ["task", "active", "candidate"],
    buckets=SCORE_BUCKETS,
)
