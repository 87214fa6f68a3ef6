"""PostgreSQL functions for the hot-path money operations (one round trip each).

The SQLite backend runs the same statements in-process (store/sqlite_holds.py); keep the
two in step.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

HOLD = """
CREATE OR REPLACE FUNCTION tokenyard_hold(
    p_id text, p_account text, p_key text, p_amount bigint, p_owner text
) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET reserved_nano = reserved_nano + p_amount
     WHERE id = p_account AND balance_nano - reserved_nano >= p_amount;
    IF NOT FOUND THEN
        RETURN 'account';
    END IF;
    IF p_key IS NOT NULL THEN
        UPDATE api_keys SET reserved_nano = reserved_nano + p_amount
         WHERE id = p_key
           AND (budget_nano IS NULL OR spent_nano + reserved_nano + p_amount <= budget_nano);
        IF NOT FOUND THEN
            -- undo the account's part: this function is one statement, so one transaction
            UPDATE accounts SET reserved_nano = reserved_nano - p_amount WHERE id = p_account;
            RETURN 'key';
        END IF;
    END IF;
    INSERT INTO reservations (id, account_id, key_id, amount_nano, owner, created_at)
    VALUES (p_id, p_account, p_key, p_amount, p_owner, now());
    RETURN NULL;
END $$;
"""

SETTLE = """
CREATE OR REPLACE FUNCTION tokenyard_settle(
    p_id text, p_account text, p_key text, p_reserved bigint, p_cost bigint,
    p_provider_cost bigint, p_model text, p_provider text, p_input bigint, p_cached bigint,
    p_output bigint
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    held bigint := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM ledger WHERE reference = 'req:' || p_id) THEN
        RETURN false;
    END IF;
    DELETE FROM reservations WHERE id = p_id;
    IF FOUND THEN
        held := p_reserved;
    END IF;
    INSERT INTO ledger (account_id, kind, amount_nano, reference, created_at, day, key_id,
                        model, provider, input_tokens, cached_tokens, output_tokens,
                        provider_cost_nano)
    VALUES (p_account, 'charge', -p_cost, 'req:' || p_id, now(),
            to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD'), p_key, p_model, p_provider,
            p_input, p_cached, p_output, p_provider_cost);
    UPDATE accounts SET balance_nano = balance_nano - p_cost,
                        reserved_nano = reserved_nano - held
     WHERE id = p_account;
    IF p_key IS NOT NULL THEN
        UPDATE api_keys SET spent_nano = spent_nano + p_cost,
                            reserved_nano = reserved_nano - held
         WHERE id = p_key;
    END IF;
    RETURN true;
EXCEPTION WHEN unique_violation THEN
    RETURN false;  -- a concurrent settle of the same request won
END $$;
"""

RELEASE = """
CREATE OR REPLACE FUNCTION tokenyard_release(p_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    r reservations%ROWTYPE;
BEGIN
    DELETE FROM reservations WHERE id = p_id RETURNING * INTO r;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE accounts SET reserved_nano = reserved_nano - r.amount_nano WHERE id = r.account_id;
    IF r.key_id IS NOT NULL THEN
        UPDATE api_keys SET reserved_nano = reserved_nano - r.amount_nano WHERE id = r.key_id;
    END IF;
    RETURN true;
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in (HOLD, SETTLE, RELEASE):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS tokenyard_release(text)")
    op.execute(
        "DROP FUNCTION IF EXISTS tokenyard_settle(text, text, text, bigint, bigint, "
        "bigint, text, text, bigint, bigint, bigint)"
    )
    op.execute("DROP FUNCTION IF EXISTS tokenyard_hold(text, text, text, bigint, text)")
