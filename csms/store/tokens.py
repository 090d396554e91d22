"""Credentials: id tokens (C) and the HTTP API's bearer tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from .base import _API_SCOPES, StoreBase
from .models import ApiToken, IdToken
from .rows import ApiTokenRow, IdTokenRow
from .types import opt_utc, utcnow


class TokenStore(StoreBase):
    """Id tokens and API tokens."""

    # ------------------------------------------------------------------ id tokens
    async def upsert_id_token(
        self,
        id_token: str,
        token_type: str,
        *,
        status: str = "Accepted",
        expires_at: datetime | None = None,
        group_id: str | None = None,
        allowed_energy_transfer: list[str] | None = None,
    ) -> IdTokenRow:
        """Create or fully replace a token's authorization data (``created_at`` is kept)."""
        values = {
            "status": status,
            "expires_at": opt_utc(expires_at, "expires_at"),
            "group_id": group_id,
            "allowed_energy_transfer": None if allowed_energy_transfer is None else list(allowed_energy_transfer),
        }
        ins = self._insert(IdToken).values(id_token=id_token, type=token_type, created_at=utcnow(), **values)
        ins = ins.on_conflict_do_update(
            index_elements=[IdToken.id_token, IdToken.type], set_={k: ins.excluded[k] for k in values}
        )
        async with self._write() as s:
            await s.execute(ins)
            obj = (
                await s.scalars(
                    select(IdToken)
                    .where(IdToken.id_token == id_token, IdToken.type == token_type)
                    .execution_options(populate_existing=True)
                )
            ).one()
            return IdTokenRow.model_validate(obj)

    async def get_id_token(self, id_token: str, token_type: str) -> IdTokenRow | None:
        obj = await self._one(select(IdToken).where(IdToken.id_token == id_token, IdToken.type == token_type))
        return None if obj is None else IdTokenRow.model_validate(obj)

    async def list_id_tokens(
        self, *, status: str | None = None, group_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[IdTokenRow]:
        stmt = select(IdToken).order_by(IdToken.id_token, IdToken.type).limit(limit).offset(offset)
        if status is not None:
            stmt = stmt.where(IdToken.status == status)
        if group_id is not None:
            stmt = stmt.where(IdToken.group_id == group_id)
        return [IdTokenRow.model_validate(o) for o in await self._all(stmt)]

    async def delete_id_token(self, id_token: str, token_type: str) -> bool:
        async with self._write() as s:
            result = await s.execute(delete(IdToken).where(IdToken.id_token == id_token, IdToken.type == token_type))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ API tokens
    async def add_api_token(self, name: str, token_hash: str, scope: str) -> ApiTokenRow:
        """Store a (hashed) API token. Raises ``ValueError`` if the name or hash already exists."""
        if scope not in _API_SCOPES:
            raise ValueError(f"scope must be one of {sorted(_API_SCOPES)}, not {scope!r}")
        ins = (
            self._insert(ApiToken)
            .values(name=name, token_hash=token_hash, scope=scope, created_at=utcnow(), revoked=False)
            .on_conflict_do_nothing()
            .returning(ApiToken.id)
        )
        async with self._write() as s:
            new_id = (await s.execute(ins)).scalar_one_or_none()
            if new_id is None:
                raise ValueError(f"an API token named {name!r} (or with that hash) already exists")
            obj = (await s.scalars(select(ApiToken).where(ApiToken.id == new_id))).one()
            return ApiTokenRow.model_validate(obj)

    async def find_api_token_by_hash(self, token_hash: str) -> ApiTokenRow | None:
        """The non-revoked token with this hash, if any."""
        obj = await self._one(select(ApiToken).where(ApiToken.token_hash == token_hash, ApiToken.revoked.is_(False)))
        return None if obj is None else ApiTokenRow.model_validate(obj)

    async def list_api_tokens(self, include_revoked: bool = True) -> list[ApiTokenRow]:
        stmt = select(ApiToken).order_by(ApiToken.name)
        if not include_revoked:
            stmt = stmt.where(ApiToken.revoked.is_(False))
        return [ApiTokenRow.model_validate(o) for o in await self._all(stmt)]

    async def revoke_api_token(self, name: str) -> bool:
        """Returns True if a not-yet-revoked token was revoked."""
        async with self._write() as s:
            result = await s.execute(
                update(ApiToken).where(ApiToken.name == name, ApiToken.revoked.is_(False)).values(revoked=True)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
