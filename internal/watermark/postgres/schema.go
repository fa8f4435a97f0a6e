package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations[i] brings the schema from version i to version i+1; %[1]s is the watermark table,
// %[2]s the name of a function of its own in the same schema (<table>_clear_sig) and %[3]s the
// spending table (<table>_spending, in the same schema). An entry may hold several statements. A migration that has shipped is never edited: a change is a new entry at the end.
var migrations = []string{
	// 1: one row per (chain, key, class). digest is blake2b-256 of the signed bytes, NULL when the
	// mark was stored without one (imported or hand-written). Rows are never deleted.
	`CREATE TABLE %[1]s (
		chain_id   text        NOT NULL,
		pkh        text        NOT NULL,
		class      text        NOT NULL CHECK (class IN ('block', 'preattestation', 'attestation')),
		level      integer     NOT NULL,
		round      integer     NOT NULL,
		digest     bytea       CHECK (digest IS NULL OR octet_length(digest) = 32),
		updated_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (chain_id, pkh, class)
	)`,
	// 2: the base58 signature released for the mark, NULL when none is known (rows of version 1,
	// imported marks). A signer of version 1 still running against the table updates level, round
	// and digest and leaves signature alone: the trigger clears it then, so that a signature is
	// never kept with a mark it was not made for (the next identical ECDSA request is refused, as
	// for any mark signed before signatures were kept, instead of being answered with it).
	`ALTER TABLE %[1]s ADD COLUMN signature text CHECK (signature IS NULL OR signature <> '');
	CREATE FUNCTION %[2]s() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.signature IS NOT DISTINCT FROM OLD.signature THEN
			NEW.signature := NULL;
		END IF;
		RETURN NEW;
	END
	$$;
	CREATE TRIGGER clear_stale_signature BEFORE UPDATE ON %[1]s FOR EACH ROW
		WHEN ((NEW.level, NEW.round, NEW.digest) IS DISTINCT FROM (OLD.level, OLD.round, OLD.digest))
		EXECUTE FUNCTION %[2]s()`,
	// 3: the spending lists (spending.Store): one row per key with a spending policy, its
	// list as spending.Encode writes it (a JSON array). A database of version 2, with the
	// watermark table only, gets it on the first start of this version; signers of version 2
	// still running never touch it.
	`CREATE TABLE %[3]s (
		pkh        text        PRIMARY KEY,
		spends     jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(spends) = 'array'),
		updated_at timestamptz NOT NULL DEFAULT now()
	)`,
}

// SchemaVersion is the schema version this code writes and reads.
var SchemaVersion = len(migrations)

// versionTable names the table that records the schema version of table: <table>_schema_version,
// in the same schema.
func versionTable(table pgx.Identifier) pgx.Identifier {
	v := append(pgx.Identifier{}, table...)
	v[len(v)-1] += "_schema_version"
	return v
}

// clearSigFunction names the trigger function of migration 2: <table>_clear_sig, in the same schema.
func clearSigFunction(table pgx.Identifier) pgx.Identifier {
	f := append(pgx.Identifier{}, table...)
	f[len(f)-1] += "_clear_sig"
	return f
}

// spendingTable names the table of the spending lists of table: <table>_spending, in the same
// schema.
func spendingTable(table pgx.Identifier) pgx.Identifier {
	v := append(pgx.Identifier{}, table...)
	v[len(v)-1] += "_spending"
	return v
}

// migrate creates the tables or brings them to SchemaVersion, in one transaction under an advisory
// lock, so that several signers starting together do not race. It returns the version found.
func migrate(ctx context.Context, pool *pgxpool.Pool, table pgx.Identifier) (from int, err error) {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	t, vt := table.Sanitize(), versionTable(table).Sanitize()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "signatory watermark schema "+t); err != nil {
		return 0, fmt.Errorf("schema lock: %w", err)
	}
	// Look before creating: CREATE TABLE IF NOT EXISTS needs the CREATE privilege even when the
	// table exists, and a signer that only reads and writes its rows should not need it.
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", vt).Scan(&exists); err != nil {
		return 0, fmt.Errorf("looking for %s: %w", vt, err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE TABLE "+vt+" (version integer NOT NULL)"); err != nil {
			return 0, fmt.Errorf("creating %s: %w", vt, err)
		}
	}
	var v *int32
	if err := tx.QueryRow(ctx, "SELECT max(version) FROM "+vt).Scan(&v); err != nil {
		return 0, fmt.Errorf("reading %s: %w", vt, err)
	}
	if v != nil {
		from = int(*v)
	}
	if from > SchemaVersion {
		return from, fmt.Errorf("table %s has schema version %d, newer than this signatory understands (%d): upgrade signatory", t, from, SchemaVersion)
	}
	if from == SchemaVersion {
		return from, tx.Commit(ctx)
	}
	for i := from; i < SchemaVersion; i++ {
		if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[i], t, clearSigFunction(table).Sanitize(), spendingTable(table).Sanitize())); err != nil {
			return from, fmt.Errorf("schema migration %d→%d of %s: %w", i, i+1, t, err)
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+vt); err != nil {
		return from, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+vt+" (version) VALUES ($1)", SchemaVersion); err != nil {
		return from, err
	}
	return from, tx.Commit(ctx)
}
