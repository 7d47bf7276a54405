"""Every product a deletion purges: the built-in `sql` products of `registry.products` and
those a deployment declares in its `PRODUCTS_FILE` (TOML), whatever their driver.

One catalog per process, loaded once at start (`load_catalog`): a file that does not hold
together is refused then, in one line naming the product and what is wrong, never halfway
through a deletion.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from contract.models import PlannedProduct, ProductDriver
from contract.names import PRODUCT_NAME_PATTERN
from core.config import ConfigurationError
from registry.products import PRODUCTS, Product

_NAME = re.compile(PRODUCT_NAME_PATTERN)
_KEYS = {"name", "driver", "title", "url", "secret", "live_resources_url", "instructions"}
_NEEDS: dict[ProductDriver, tuple[str, ...]] = {
    ProductDriver.WORKER: (),
    ProductDriver.HTTP: ("url", "secret"),
    ProductDriver.MANUAL: ("instructions",),
}
"""What each driver a file may declare needs besides a name (`sql` products are built in:
their tables are part of this service's schema)."""
_ONLY: dict[str, ProductDriver] = {
    "url": ProductDriver.HTTP,
    "secret": ProductDriver.HTTP,
    "live_resources_url": ProductDriver.HTTP,
    "instructions": ProductDriver.MANUAL,
}


class ProductsFileError(ConfigurationError):
    """PRODUCTS_FILE cannot be read or does not hold together: one line says where and why."""


@dataclass(frozen=True)
class DeclaredProduct:
    """A product beyond this database, as its `[[product]]` table in PRODUCTS_FILE says."""

    name: str
    driver: ProductDriver
    title: str
    url: str | None = None
    """`http`: the product's deletion API (requests are POSTed here, polled at `<url>/<id>`)."""
    secret: str | None = field(default=None, repr=False)
    """`http`: `whsec_<base64>`, signs requests and callbacks both ways (never logged)."""
    live_resources_url: str | None = None
    """`http`, optional: answers `GET ?account_id=` with the account's live resources."""
    instructions: str | None = None
    """`manual`: what the person who purges it must do."""

    def planned(self) -> PlannedProduct:
        return PlannedProduct(
            name=self.name, driver=self.driver, title=self.title, instructions=self.instructions
        )


class Catalog:
    """The built-in products, then the declared ones, in the file's order."""

    def __init__(
        self, declared: Iterable[DeclaredProduct] = (), sql: Iterable[Product] = PRODUCTS
    ) -> None:
        self.sql: tuple[Product, ...] = tuple(sql)
        self.declared: tuple[DeclaredProduct, ...] = tuple(declared)
        names = [p.name for p in self.sql] + [p.name for p in self.declared]
        if duplicate := next((n for n in names if names.count(n) > 1), None):
            raise ProductsFileError(f"product {duplicate!r} is declared twice")
        self._sql = {p.name: p for p in self.sql}
        self._declared = {p.name: p for p in self.declared}

    def names(self) -> list[str]:
        return [p.name for p in self.sql] + [p.name for p in self.declared]

    def plan(self) -> list[PlannedProduct]:
        """Every product, with what the workflow needs to purge it."""
        built_in = [PlannedProduct(name=p.name, title=p.title) for p in self.sql]
        return built_in + [p.planned() for p in self.declared]

    def sql_product(self, name: str) -> Product | None:
        return self._sql.get(name)

    def declared_product(self, name: str) -> DeclaredProduct | None:
        return self._declared.get(name)

    def of_driver(self, driver: ProductDriver) -> list[DeclaredProduct]:
        return [p for p in self.declared if p.driver is driver]


def load_catalog(products_file: Path | None) -> Catalog:
    """The built-in products plus those PRODUCTS_FILE declares (none when it is unset)."""
    if products_file is None:
        return Catalog()
    where = f"PRODUCTS_FILE {products_file}"
    try:
        document = tomllib.loads(products_file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ProductsFileError(f"{where}: cannot read it ({error.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ProductsFileError(f"{where}: not valid TOML ({error})") from None
    extra = set(document) - {"product"}
    if extra:
        raise ProductsFileError(f"{where}: unknown table {sorted(extra)[0]!r} (only [[product]])")
    tables = document.get("product", [])
    if not isinstance(tables, list):
        raise ProductsFileError(f"{where}: `product` must be an array of tables ([[product]])")
    declared = [_declared(f"{where}: product {i}", t) for i, t in enumerate(tables, 1)]
    try:
        return Catalog(declared)
    except ProductsFileError as error:
        raise ProductsFileError(f"{where}: {error}") from None


def _declared(where: str, table: object) -> DeclaredProduct:
    if not isinstance(table, dict):
        raise ProductsFileError(f"{where}: not a table")
    values: dict[str, str] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise ProductsFileError(f"{where}: unknown key {key!r}")
        if not isinstance(value, str) or not value.strip():
            raise ProductsFileError(f"{where}: {key} must be a non-empty string")
        values[key] = value.strip()
    name = values.get("name")
    if name is None:
        raise ProductsFileError(f"{where}: missing name")
    if not _NAME.fullmatch(name):
        raise ProductsFileError(
            f"{where}: name {name!r} must be lowercase letters, digits and _ (a letter first)"
        )
    where = f"{where} ({name})"
    try:
        driver = ProductDriver(values.get("driver", ""))
    except ValueError:
        known = ", ".join(_NEEDS)
        raise ProductsFileError(
            f"{where}: unknown driver {values.get('driver', '')!r} (one of {known})"
        ) from None
    if driver not in _NEEDS:
        raise ProductsFileError(f"{where}: driver sql is for built-in products (registry.products)")
    for key in _NEEDS[driver]:
        if key not in values:
            raise ProductsFileError(f"{where}: driver {driver} needs {key}")
    for key, only in _ONLY.items():
        if key in values and driver is not only:
            raise ProductsFileError(f"{where}: {key} is for driver {only}, not {driver}")
    for key in ("url", "live_resources_url"):
        if key in values:
            _check_url(where, key, values[key])
    if "secret" in values:
        _check_secret(where, values["secret"])
    return DeclaredProduct(
        name=name,
        driver=driver,
        title=values.get("title", name.replace("_", " ").capitalize()),
        url=values.get("url"),
        secret=values.get("secret"),
        live_resources_url=values.get("live_resources_url"),
        instructions=values.get("instructions"),
    )


def _check_url(where: str, key: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProductsFileError(f"{where}: {key} must be an http(s) URL")
    if parts.query or parts.fragment:
        raise ProductsFileError(f"{where}: {key} must have no query or fragment")


def _check_secret(where: str, secret: str) -> None:
    """Without echoing it: the message never shows the secret."""
    if not secret.startswith("whsec_"):
        raise ProductsFileError(f"{where}: secret must be whsec_<base64>")
    try:
        Webhook(secret)
    except Exception:
        raise ProductsFileError(f"{where}: secret must be whsec_<base64>") from None
