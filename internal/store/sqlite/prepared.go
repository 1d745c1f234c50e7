package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"strings"
)

// stmtKey names a statement of the Store's cache: its SQL, or for a multiRow statement its head and
// the number of rows.
type stmtKey struct {
	query string
	rows  int
}

// multiRow is a statement whose row part repeats: head row, row, … tail. It is run in statements of
// a power of two rows (up to max), so that it has a few fixed shapes, each parsed once per Store and
// connection, instead of a new text for every batch.
type multiRow struct {
	head, row, tail string
	max             int // a power of two
}

func (m multiRow) sql(n int) string {
	return m.head + m.row + strings.Repeat(", "+m.row, n-1) + m.tail
}

// chunk is how many of n rows (n > 0) the next statement takes: the largest power of two no more
// than n and m.max.
func (m multiRow) chunk(n int) int {
	return min(m.max, 1<<(bits.Len(uint(n))-1))
}

// prepared returns the statement of the cache named key, preparing query on the database handle the
// first time. Statements prepared on the handle are prepared again by database/sql on each
// connection they run on (once each), and closed by Close. Not for use in a transaction: preparing
// on the handle takes a connection of its own (see prepareAll).
func (s *Store) prepared(ctx context.Context, key stmtKey, query func() string) (*sql.Stmt, error) {
	s.smu.Lock()
	defer s.smu.Unlock()
	return s.preparedLocked(ctx, key, query)
}

func (s *Store) preparedLocked(ctx context.Context, key stmtKey, query func() string) (*sql.Stmt, error) {
	if st := s.stmts[key]; st != nil {
		return st, nil
	}
	if s.stmts == nil {
		s.stmts = map[stmtKey]*sql.Stmt{}
	}
	st, err := s.db.PrepareContext(ctx, query())
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	s.stmts[key] = st
	return st, nil
}

// prepareAll prepares, before a transaction, the statements it will use: the queries and every
// shape of the multiRow statements. A transaction then only binds them to its connection, and never
// waits for a second connection to prepare one (which would never come with one connection).
func (s *Store) prepareAll(ctx context.Context, queries []string, multis ...multiRow) error {
	s.smu.Lock()
	defer s.smu.Unlock()
	for _, q := range queries {
		if _, err := s.preparedLocked(ctx, stmtKey{query: q}, func() string { return q }); err != nil {
			return err
		}
	}
	for _, m := range multis {
		for n := 1; n <= m.max; n *= 2 {
			if _, err := s.preparedLocked(ctx, stmtKey{query: m.head, rows: n}, func() string { return m.sql(n) }); err != nil {
				return err
			}
		}
	}
	return nil
}

// closeStatements closes the cached statements.
func (s *Store) closeStatements() error {
	s.smu.Lock()
	defer s.smu.Unlock()
	var first error
	for k, st := range s.stmts {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(s.stmts, k)
	}
	return first
}

// txStmts gives a transaction the Store's cached statements, each bound to the transaction's
// connection once per transaction.
type txStmts struct {
	s  *Store
	tx *sql.Tx
	m  map[stmtKey]*sql.Stmt
}

func (s *Store) txStmts(tx *sql.Tx) *txStmts {
	return &txStmts{s: s, tx: tx, m: map[stmtKey]*sql.Stmt{}}
}

// get returns the statement named key for the transaction: the Store's, prepared by prepareAll, or
// else prepared for this transaction alone.
func (t *txStmts) get(ctx context.Context, key stmtKey, query func() string) (*sql.Stmt, error) {
	if st := t.m[key]; st != nil {
		return st, nil
	}
	t.s.smu.Lock()
	st := t.s.stmts[key]
	t.s.smu.Unlock()
	if st != nil {
		st = t.tx.StmtContext(ctx, st) // closed with the transaction
	} else {
		var err error
		if st, err = t.tx.PrepareContext(ctx, query()); err != nil {
			return nil, fmt.Errorf("prepare: %w", err)
		}
	}
	t.m[key] = st
	return st, nil
}

// query is get for a statement of fixed text.
func (t *txStmts) query(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.get(ctx, stmtKey{query: query}, func() string { return query })
}

// execRows runs m over rows, width arguments a row, in as few statements of its fixed shapes as
// they take (in order, so rows are written in the order given). The arguments in fixed come first in
// every statement: the row of m refers to them as ?1, ?2 … and to its own as ?, which SQLite numbers
// after the largest so far. done, when not nil, is told each statement's first row (an index into
// the rows), its number of rows and its result.
func (t *txStmts) execRows(ctx context.Context, m multiRow, fixed []any, width int, rows []any, done func(first, n int, res sql.Result) error) error {
	args := make([]any, 0, len(fixed)+min(len(rows), m.max*width))
	for first := 0; len(rows) > 0; {
		n := m.chunk(len(rows) / width)
		st, err := t.get(ctx, stmtKey{query: m.head, rows: n}, func() string { return m.sql(n) })
		if err != nil {
			return err
		}
		args = append(append(args[:0], fixed...), rows[:n*width]...)
		res, err := st.ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		if done != nil {
			if err := done(first, n, res); err != nil {
				return err
			}
		}
		rows, first = rows[n*width:], first+n
	}
	return nil
}

// queryRows runs the query m (its rows being one argument each after the fixed ones in fixed) over
// vals, in statements of its fixed shapes: a statement's rows past the end of vals repeat the last
// value, which suits a set such as the list of IN (…). scan is called for every row of the results.
func queryRows(ctx context.Context, get func(stmtKey, func() string) (*sql.Stmt, error), m multiRow, fixed []any, vals []any, scan func(*sql.Rows) error) error {
	args := make([]any, 0, len(fixed)+min(len(vals), m.max))
	for len(vals) > 0 {
		n := min(m.max, 1<<bits.Len(uint(len(vals)-1))) // the smallest power of two no less than len(vals)
		part := vals[:min(n, len(vals))]
		args = append(append(args[:0], fixed...), part...)
		for len(args) < len(fixed)+n {
			args = append(args, part[len(part)-1])
		}
		st, err := get(stmtKey{query: m.head, rows: n}, func() string { return m.sql(n) })
		if err != nil {
			return err
		}
		rows, err := st.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		vals = vals[len(part):]
	}
	return nil
}
