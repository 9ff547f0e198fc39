from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FollowRequest(_message.Message):
    __slots__ = ("plane_version", "process_name")
    PLANE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROCESS_NAME_FIELD_NUMBER: _ClassVar[int]
    plane_version: str
    process_name: str
    def __init__(self, plane_version: _Optional[str] = ..., process_name: _Optional[str] = ...) -> None: ...

class FollowEvent(_message.Message):
    __slots__ = ("snapshot", "applied", "status", "facts")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    applied: Applied
    status: Status
    facts: Facts
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., applied: _Optional[_Union[Applied, _Mapping]] = ..., status: _Optional[_Union[Status, _Mapping]] = ..., facts: _Optional[_Union[Facts, _Mapping]] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("index", "state", "settings")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    index: int
    state: bytes
    settings: PlaneSettings
    def __init__(self, index: _Optional[int] = ..., state: _Optional[bytes] = ..., settings: _Optional[_Union[PlaneSettings, _Mapping]] = ...) -> None: ...

class PlaneSettings(_message.Message):
    __slots__ = ("self_address", "peers", "commit_timeout", "clock_skew_allowance", "stale_after")
    SELF_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    COMMIT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    CLOCK_SKEW_ALLOWANCE_FIELD_NUMBER: _ClassVar[int]
    STALE_AFTER_FIELD_NUMBER: _ClassVar[int]
    self_address: str
    peers: _containers.RepeatedScalarFieldContainer[str]
    commit_timeout: float
    clock_skew_allowance: float
    stale_after: float
    def __init__(self, self_address: _Optional[str] = ..., peers: _Optional[_Iterable[str]] = ..., commit_timeout: _Optional[float] = ..., clock_skew_allowance: _Optional[float] = ..., stale_after: _Optional[float] = ...) -> None: ...

class Applied(_message.Message):
    __slots__ = ("index", "previous_index", "command_json", "outcome_json")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_INDEX_FIELD_NUMBER: _ClassVar[int]
    COMMAND_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_JSON_FIELD_NUMBER: _ClassVar[int]
    index: int
    previous_index: int
    command_json: bytes
    outcome_json: bytes
    def __init__(self, index: _Optional[int] = ..., previous_index: _Optional[int] = ..., command_json: _Optional[bytes] = ..., outcome_json: _Optional[bytes] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("self_address", "role", "leader", "term", "commit_index", "applied_index", "leader_commit_index", "has_quorum", "log_len", "ready", "peers", "readonly_nodes", "unappliable_entries", "refused_connections", "last_leader_contact", "last_leader_contact_wall", "stale_after", "solo", "dead_links", "snapshots_sent", "state_applied_index")
    SELF_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LEADER_COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    HAS_QUORUM_FIELD_NUMBER: _ClassVar[int]
    LOG_LEN_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    READONLY_NODES_FIELD_NUMBER: _ClassVar[int]
    UNAPPLIABLE_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    REFUSED_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_LEADER_CONTACT_FIELD_NUMBER: _ClassVar[int]
    LAST_LEADER_CONTACT_WALL_FIELD_NUMBER: _ClassVar[int]
    STALE_AFTER_FIELD_NUMBER: _ClassVar[int]
    SOLO_FIELD_NUMBER: _ClassVar[int]
    DEAD_LINKS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOTS_SENT_FIELD_NUMBER: _ClassVar[int]
    STATE_APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    self_address: str
    role: str
    leader: str
    term: int
    commit_index: int
    applied_index: int
    leader_commit_index: int
    has_quorum: bool
    log_len: int
    ready: bool
    peers: _containers.RepeatedCompositeFieldContainer[Peer]
    readonly_nodes: int
    unappliable_entries: int
    refused_connections: int
    last_leader_contact: float
    last_leader_contact_wall: float
    stale_after: float
    solo: bool
    dead_links: int
    snapshots_sent: int
    state_applied_index: int
    def __init__(self, self_address: _Optional[str] = ..., role: _Optional[str] = ..., leader: _Optional[str] = ..., term: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., leader_commit_index: _Optional[int] = ..., has_quorum: _Optional[bool] = ..., log_len: _Optional[int] = ..., ready: _Optional[bool] = ..., peers: _Optional[_Iterable[_Union[Peer, _Mapping]]] = ..., readonly_nodes: _Optional[int] = ..., unappliable_entries: _Optional[int] = ..., refused_connections: _Optional[int] = ..., last_leader_contact: _Optional[float] = ..., last_leader_contact_wall: _Optional[float] = ..., stale_after: _Optional[float] = ..., solo: _Optional[bool] = ..., dead_links: _Optional[int] = ..., snapshots_sent: _Optional[int] = ..., state_applied_index: _Optional[int] = ...) -> None: ...

class Peer(_message.Message):
    __slots__ = ("address", "connected", "match_index", "next_index")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    MATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEXT_INDEX_FIELD_NUMBER: _ClassVar[int]
    address: str
    connected: bool
    match_index: int
    next_index: int
    def __init__(self, address: _Optional[str] = ..., connected: _Optional[bool] = ..., match_index: _Optional[int] = ..., next_index: _Optional[int] = ...) -> None: ...

class Facts(_message.Message):
    __slots__ = ("workers", "draining", "shutting_down")
    class WorkersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: WorkerFacts
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[WorkerFacts, _Mapping]] = ...) -> None: ...
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    SHUTTING_DOWN_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.MessageMap[str, WorkerFacts]
    draining: bool
    shutting_down: bool
    def __init__(self, workers: _Optional[_Mapping[str, WorkerFacts]] = ..., draining: _Optional[bool] = ..., shutting_down: _Optional[bool] = ...) -> None: ...

class WorkerFacts(_message.Message):
    __slots__ = ("health", "reason", "breaker")
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    health: str
    reason: str
    breaker: str
    def __init__(self, health: _Optional[str] = ..., reason: _Optional[str] = ..., breaker: _Optional[str] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("plane_version", "command_json", "timeout_secs")
    PLANE_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMAND_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECS_FIELD_NUMBER: _ClassVar[int]
    plane_version: str
    command_json: bytes
    timeout_secs: float
    def __init__(self, plane_version: _Optional[str] = ..., command_json: _Optional[bytes] = ..., timeout_secs: _Optional[float] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("outcome_json", "error", "applied_index")
    OUTCOME_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    outcome_json: bytes
    error: SubmitError
    applied_index: int
    def __init__(self, outcome_json: _Optional[bytes] = ..., error: _Optional[_Union[SubmitError, _Mapping]] = ..., applied_index: _Optional[int] = ...) -> None: ...

class SubmitError(_message.Message):
    __slots__ = ("reason", "message", "outcome", "request_id", "retry_after", "timed_out", "expires_at")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    outcome: str
    request_id: str
    retry_after: float
    timed_out: bool
    expires_at: float
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., outcome: _Optional[str] = ..., request_id: _Optional[str] = ..., retry_after: _Optional[float] = ..., timed_out: _Optional[bool] = ..., expires_at: _Optional[float] = ...) -> None: ...
