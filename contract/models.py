"""Every payload of the public contract: the workflow's input and result, its signals, query
and update, and each activity's input and output (one model per parameter).

Nothing here does I/O, so the workflow sandbox can import it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.cooling_off import CoolingOffDuration, CoolingOffWindow
from contract.messages import CancelInput as CancelInput
from contract.messages import CancelOutcome as CancelOutcome
from contract.messages import RecheckInput as RecheckInput
from contract.messages import ResendCodeInput as ResendCodeInput
from contract.messages import RetryPurgesInput as RetryPurgesInput
from contract.messages import SubmitCodeInput as SubmitCodeInput
from contract.names import ACCOUNT_ID_PATTERN, REQUESTER_PATTERN
from contract.stages import Stage


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- workflow input and policy ----------------------------------------------------------------


_DURATION_BOUNDS: dict[str, tuple[timedelta, timedelta]] = {
    "tasks_deadline": (timedelta(seconds=1), timedelta(days=365)),
    "recheck_interval": (timedelta(seconds=1), timedelta(days=30)),
    "verification_deadline": (timedelta(seconds=1), timedelta(days=30)),
    "code_ttl": (timedelta(seconds=1), timedelta(hours=24)),
    "resend_interval": (timedelta(0), timedelta(hours=24)),
    "purge_heartbeat_timeout": (timedelta(seconds=1), timedelta(hours=1)),
    "recheck_cooldown": (timedelta(0), timedelta(hours=1)),
    "product_check_wait": (timedelta(seconds=1), timedelta(hours=1)),
    "http_callback_wait": (timedelta(seconds=1), timedelta(days=1)),
    "http_poll_interval": (timedelta(seconds=1), timedelta(hours=1)),
}
"""Each duration of a policy, between these inclusive bounds."""


class DeletionPolicy(_Model):
    """Deadlines and limits of one deletion; defaults are the product's policy."""

    tasks_deadline: timedelta = timedelta(days=30)
    """How long the run waits for pending tasks to be resolved before it ends as EXPIRED."""
    recheck_interval: timedelta = timedelta(hours=6)
    """Pending tasks are checked again this often without being asked."""
    verification_deadline: timedelta = timedelta(hours=24)
    """How long the run waits for a correct code before it ends as EXPIRED."""
    code_ttl: timedelta = timedelta(minutes=10)
    code_digits: int = Field(default=6, ge=6, le=8)
    """Random digits per code (NIST SP 800-63B: at least 6)."""
    code_attempts: int = Field(default=5, ge=1, le=10)
    """Wrong attempts allowed per code; after that the code is dead and a resend is needed."""
    resend_interval: timedelta = timedelta(minutes=1)
    max_codes: int = Field(default=6, ge=1, le=20)
    """Codes issued per deletion in all (the first plus resends)."""
    purge_attempts: int = Field(default=20, ge=1)
    """Attempts per product purge on transient faults before it becomes a pending task."""
    purge_heartbeat_timeout: timedelta = timedelta(seconds=30)
    """A purge whose worker died is retried elsewhere after this long without a heartbeat."""
    recheck_cooldown: timedelta = timedelta(seconds=10)
    """Asked rechecks closer together than this are refused (429): each costs a check."""
    history_limit: int = Field(default=2000, ge=200, le=40_000)
    """Events after which a long wait (AWAITING_TASKS, COOLING_OFF, ...) continues as new."""
    product_check_wait: timedelta = timedelta(minutes=1)
    """How long the live-resource check waits for a `worker` product's worker to take it. A
    worker that is down does not hold the check: its own purge checks again before it removes
    anything (the product kit refuses to purge an account with live resources)."""
    http_callback_wait: timedelta = timedelta(minutes=10)
    """How long an `http` product's purge awaits its callback; then its API is polled."""
    http_poll_interval: timedelta = timedelta(minutes=1)
    cooling_off: CoolingOffDuration = timedelta(0)
    """Frozen and restorable this long before purging starts (`P15D`; PT0S: purge at once)."""

    @model_validator(mode="after")
    def _durations_are_bounded(self) -> DeletionPolicy:
        """A zero or negative duration would be a hot loop or an instant expiry; a huge one a
        run that never ends. Each must lie within its bounds."""
        for name, (low, high) in _DURATION_BOUNDS.items():
            value: timedelta = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, not {value}")
        return self


# --- signals and updates: their inputs and answers are in contract/messages.py ---------------


# --- findings and progress --------------------------------------------------------------------


class TaskCategory(StrEnum):
    CLOUD_PRODUCT = "cloud_product"
    BALANCE_FUNDS = "balance_funds"
    ACCOUNT_GROUP = "account_group"
    AGENCY = "agency"
    PARTNERSHIP = "partnership"
    CONTRACT = "contract"
    ARREARS = "arrears"
    PURGE_FAILURE = "purge_failure"
    MANUAL_PURGE = "manual_purge"
    """A `manual` product's purge, waiting for a person to do it and an operator to confirm."""

    @classmethod
    def of_prerequisites(cls) -> set[TaskCategory]:
        """The categories the prerequisite check finds (SPEC flow step 1); the others arise
        while purging."""
        return set(cls) - {cls.PURGE_FAILURE, cls.MANUAL_PURGE}


class PendingTask(_Model):
    """Something the user (or a product team) must finish before the deletion can go on."""

    category: TaskCategory
    item: str
    """Which thing: e.g. `compute instance i-123 (web-1, us-east-1)`, `bill B-2026-10`."""
    message: str
    resolution: str
    product: str | None = None


class ProductDriver(StrEnum):
    """How a product's data is purged (SPEC "Products beyond this database")."""

    SQL = "sql"
    """Tables in this service's PostgreSQL, purged by the deletion worker."""
    WORKER = "worker"
    """The product team's own worker, on task queue `account-deletion-product-<name>`."""
    HTTP = "http"
    """The product's deletion API: a signed request, completed by a signed callback."""
    MANUAL = "manual"
    """A person does it; an operator confirms."""


class PlannedProduct(_Model):
    """One product of the registry as a run plans it (recorded in history with the plan)."""

    name: str
    driver: ProductDriver = ProductDriver.SQL
    title: str = ""
    instructions: str | None = None
    """For `manual` products: what the person must do."""


class PurgeState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    """A `manual` product: waiting for an operator to confirm that a person purged it."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class TableReceipt(_Model):
    table: str
    method: str
    """`delete` or `anonymise` (records the law requires keeping)."""
    rows: int


class ProductReceipt(_Model):
    """What one product's purge did for the account, and the probe's word that nothing is left."""

    product: str
    tables: list[TableReceipt]
    completed_at: datetime
    verified_clean: bool
    driver: ProductDriver = ProductDriver.SQL
    reported_rows: int | None = None
    """What an `http` product reported it removed (its tables are its own, not listed)."""
    confirmed_by: str | None = None
    """Who confirmed a `manual` product's purge."""

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables) + (self.reported_rows or 0)


class ProductProgress(_Model):
    product: str
    state: PurgeState = PurgeState.PENDING
    attempts: int = 0
    rows: int = 0
    failure: str | None = None
    driver: ProductDriver = ProductDriver.SQL
    since: datetime | None = None
    """When the current state began: how long a product has been purging or waiting."""


class CarriedState(_Model):
    """What one run of a deletion hands to the next: when a long wait continues as new (so
    that no history grows without bound), or when a new start resumes the deletion of an
    account a terminated run left frozen."""

    resume_at: Stage
    """CHECKING_PREREQUISITES (a long wait for tasks), FREEZING (a frozen account no purge
    touched yet), COOLING_OFF (a long window, or an ended run's window) or PURGING (a long
    purge block, or a frozen account whose purge began)."""
    requested_at: datetime
    tasks_deadline: datetime | None = None
    verified: bool = False
    pending_tasks: list[PendingTask] = []
    products: list[ProductProgress] = []
    receipts: list[ProductReceipt] = []
    cooling_off: CoolingOffWindow | None = None


class DeletionRequest(_Model):
    """Input of the AccountDeletion workflow."""

    account_id: str = Field(pattern=ACCOUNT_ID_PATTERN)
    requested_by: str = Field(default="console", max_length=200, pattern=REQUESTER_PATTERN)
    """Who asked (an operator or the console's user id): shown in the UI, never PII."""
    policy: DeletionPolicy = DeletionPolicy()
    carried: CarriedState | None = None
    """Set when this run continues an earlier one of the same deletion."""


class VerificationOutcome(StrEnum):
    ACCEPTED = "accepted"
    WRONG = "wrong"
    EXPIRED = "expired"
    LOCKED = "locked"
    """Too many wrong attempts on this code: a new one must be requested."""


class VerificationStatus(_Model):
    channel: str
    destination: str
    """Masked: `j***@example.com`, `+86 *** **** 1234`."""
    code_expires_at: datetime
    attempts_left: int
    codes_left: int
    next_resend_at: datetime
    last_outcome: VerificationOutcome | None = None


class DeletionStatus(_Model):
    """What the `status` query answers and the HTTP API shows."""

    account_id: str
    workflow_id: str
    stage: Stage
    requested_by: str
    pending_tasks: list[PendingTask] = []
    products: list[ProductProgress] = []
    verification: VerificationStatus | None = None
    verified: bool = False
    identifiers_released: bool = False
    deadline: datetime | None = None
    """When the current wait ends the run as EXPIRED, if it is waiting."""
    closed_reason: str | None = None
    purge_starts_at: datetime | None = None
    """In COOLING_OFF: when the window ends and purging starts, unless the account is restored."""
    registry_version: str | None = None
    """Which product registry the purge was planned with (a digest of its product names)."""


class DeletionReceipt(_Model):
    """The result of a run: what was deleted, when; or why nothing was."""

    account_id: str
    workflow_id: str
    outcome: Stage
    requested_by: str
    requested_at: datetime
    closed_at: datetime
    products: list[ProductReceipt] = []
    identifiers_released_at: datetime | None = None
    reason: str | None = None


# --- activity inputs and outputs ---------------------------------------------------------------


class AccountRef(_Model):
    account_id: str
    workflow_id: str


class PrerequisiteReport(_Model):
    pending_tasks: list[PendingTask]
    worker_products: list[str] = []
    """`worker` products, whose own workers check their live resources (the workflow asks
    each on its task queue)."""


class IssueCodeInput(_Model):
    account_id: str
    workflow_id: str
    challenge_id: str
    """Chosen by the workflow, so that a retried activity replaces the same challenge."""
    issued_at: datetime
    expires_at: datetime
    """Both on the workflow's clock, which also decides expiry when a code is submitted."""
    attempts: int
    code_digits: int = Field(default=6, ge=6, le=8)


class IssuedCode(_Model):
    challenge_id: str
    channel: str
    destination: str
    expires_at: datetime
    attempts_left: int


class CheckCodeInput(_Model):
    challenge_id: str
    attempt_id: str
    """Chosen by the workflow: a retried check is recognised and not counted twice."""
    code: str
    checked_at: datetime


class CodeCheck(_Model):
    outcome: VerificationOutcome
    attempts_left: int


class PurgeProductInput(_Model):
    account_id: str
    workflow_id: str
    product: str


class ConfirmPurgeInput(_Model):
    """An operator's word that a person purged a `manual` product (the `confirm_purge` update)."""

    product: str = Field(max_length=64)
    confirmed_by: str = Field(min_length=1, max_length=200, pattern=REQUESTER_PATTERN)


class RecordPurgeInput(_Model):
    """A product purged outside this database (worker, http, manual): its receipt, recorded in
    `product_purges` so that identifiers are released only once every product finished."""

    account_id: str
    workflow_id: str
    receipt: ProductReceipt


class LiveResourcesInput(_Model):
    """A `worker` product's live-resource check for one account (prerequisite step)."""

    account_id: str
    workflow_id: str
    product: str


class ProgressRecord(_Model):
    """Keeps the deletion's row in PostgreSQL in step with the workflow."""

    account_id: str
    workflow_id: str
    run_id: str
    requested_by: str
    stage: Stage
    pending_tasks: list[PendingTask]
    products: list[ProductProgress]
    closed: bool = False
    receipt: DeletionReceipt | None = None
    deadline: datetime | None = None
    """When the current wait ends the run as EXPIRED (the status query's `deadline`), or in
    COOLING_OFF when purging starts (its `purge_starts_at`). Defaults to None: records of
    histories written before it existed still decode and replay."""


class FinalizeInput(_Model):
    account_id: str
    workflow_id: str
    requested_by: str
    requested_at: datetime
    products: list[ProductReceipt]


class DeliverNotificationInput(_Model):
    idempotency_key: str
