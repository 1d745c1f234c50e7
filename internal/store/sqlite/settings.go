package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"inkorg/internal/settings"
	"inkorg/internal/store"
)

// queryer is what *sql.DB and *sql.Tx have in common.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Config implements store.Store.
func (s *Store) Config(ctx context.Context) (settings.Config, error) {
	var c settings.Config
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if c.System, err = s.system(ctx, tx); err != nil {
			return err
		}
		if c.Users, err = s.users(ctx, tx, ""); err != nil {
			return err
		}
		if c.Accounts, err = s.accounts(ctx, tx, ""); err != nil {
			return err
		}
		c.Webshop, err = s.webshop(ctx, tx)
		return err
	})
	return c, err
}

// System implements store.Store.
func (s *Store) System(ctx context.Context) (settings.System, error) { return s.system(ctx, s.db) }

func (s *Store) system(ctx context.Context, q queryer) (settings.System, error) {
	var sys settings.System
	var pw, secret, key []byte
	var expires string
	err := q.QueryRowContext(ctx, `SELECT email_method, server_address, port, use_ssl, username, password, client_id, tenant_id, auth_flow, client_secret, client_secret_expires, client_certificate, client_key, send_transport FROM system_settings WHERE id = 1`).
		Scan(&sys.EmailMethod, &sys.ServerAddress, &sys.Port, &sys.UseSSL, &sys.Username, &pw, &sys.ClientID, &sys.TenantID, &sys.AuthFlow, &secret, &expires, &sys.ClientCertificate, &key, &sys.SendTransport)
	if errors.Is(err, sql.ErrNoRows) {
		return settings.System{}, nil
	}
	if err != nil {
		return sys, fmt.Errorf("read system settings: %w", err)
	}
	if sys.Password, err = store.Unseal(s.sealer, pw, store.SystemPasswordField); err != nil {
		return sys, err
	}
	if sys.ClientSecret, err = store.Unseal(s.sealer, secret, store.SystemClientSecretField); err != nil {
		return sys, err
	}
	if sys.ClientKey, err = store.Unseal(s.sealer, key, store.SystemClientKeyField); err != nil {
		return sys, err
	}
	if expires != "" {
		if sys.ClientSecretExpires, err = settings.ParseDate(expires); err != nil {
			return sys, fmt.Errorf("read system settings: client secret expiry %q: %w", expires, err)
		}
	}
	return sys, nil
}

// PutSystem implements store.Store.
func (s *Store) PutSystem(ctx context.Context, sys settings.System, actor string) error {
	pw, err := store.Seal(s.sealer, sys.Password, store.SystemPasswordField)
	if err != nil {
		return err
	}
	secret, err := store.Seal(s.sealer, sys.ClientSecret, store.SystemClientSecretField)
	if err != nil {
		return err
	}
	key, err := store.Seal(s.sealer, sys.ClientKey, store.SystemClientKeyField)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		old, err := s.system(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO system_settings (id, email_method, server_address, port, use_ssl, username, password, client_id, tenant_id, auth_flow, client_secret, client_secret_expires, client_certificate, client_key, send_transport, updated_at)
			VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET email_method = excluded.email_method, server_address = excluded.server_address, port = excluded.port,
				use_ssl = excluded.use_ssl, username = excluded.username, password = excluded.password, client_id = excluded.client_id,
				tenant_id = excluded.tenant_id, auth_flow = excluded.auth_flow, client_secret = excluded.client_secret,
				client_secret_expires = excluded.client_secret_expires, client_certificate = excluded.client_certificate,
				client_key = excluded.client_key, send_transport = excluded.send_transport, updated_at = excluded.updated_at`,
			sys.EmailMethod, sys.ServerAddress, sys.Port, sys.UseSSL, sys.Username, pw, sys.ClientID, sys.TenantID, sys.AuthFlow, secret,
			sys.ClientSecretExpires.String(), sys.ClientCertificate, key, sys.SendTransport, s.stamp()); err != nil {
			return fmt.Errorf("write system settings: %w", err)
		}
		return s.audit(ctx, tx, actor, "system", store.SystemChanges(old, sys))
	})
}

func nullString[T ~string](p *T) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: string(*p), Valid: true}
}

func fromNull[T ~string](n sql.NullString) *T {
	if !n.Valid {
		return nil
	}
	v := T(n.String)
	return &v
}

// User implements store.Store.
func (s *Store) User(ctx context.Context, name string) (settings.User, error) {
	us, err := s.users(ctx, s.db, name)
	if err != nil {
		return settings.User{}, err
	}
	if len(us) == 0 {
		return settings.User{}, fmt.Errorf("user %s: %w", name, store.ErrNotFound)
	}
	return us[0], nil
}

// Users implements store.Store.
func (s *Store) Users(ctx context.Context) ([]settings.User, error) { return s.users(ctx, s.db, "") }

// users reads all users, or the one named.
func (s *Store) users(ctx context.Context, q queryer, name string) ([]settings.User, error) {
	query := `SELECT name, email_method, email_address, exchange_username, exchange_password, exchange_password_set, copy_to_self, signature FROM users`
	var args []any
	if name != "" {
		query += ` WHERE name = ?`
		args = append(args, strings.TrimSpace(name))
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY name`, args...)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer rows.Close()
	var out []settings.User
	for rows.Next() {
		var u settings.User
		var method, addr, user, copy, sig sql.NullString
		var pw []byte
		var pwSet bool
		if err := rows.Scan(&u.Name, &method, &addr, &user, &pw, &pwSet, &copy, &sig); err != nil {
			return nil, fmt.Errorf("read users: %w", err)
		}
		u.EmailMethod, u.EmailAddress, u.ExchangeUsername = fromNull[settings.EmailMethod](method), fromNull[string](addr), fromNull[string](user)
		u.CopyToSelf, u.Signature = fromNull[settings.CopyToSelf](copy), fromNull[string](sig)
		if pwSet {
			sec, err := store.Unseal(s.sealer, pw, store.UserPasswordField(u.Name))
			if err != nil {
				return nil, err
			}
			u.ExchangePassword = &sec
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// PutUser implements store.Store.
func (s *Store) PutUser(ctx context.Context, u settings.User, actor string) error {
	u.Name = strings.TrimSpace(u.Name)
	if u.Name == "" {
		return errors.New("write user: no name")
	}
	var pw []byte
	if u.ExchangePassword != nil {
		var err error
		if pw, err = store.Seal(s.sealer, *u.ExchangePassword, store.UserPasswordField(u.Name)); err != nil {
			return err
		}
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		var old *settings.User
		if us, err := s.users(ctx, tx, u.Name); err != nil {
			return err
		} else if len(us) == 1 {
			old = &us[0]
			u.Name = old.Name // keep the name as first written
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, email_method, email_address, exchange_username, exchange_password, exchange_password_set, copy_to_self, signature, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET email_method = excluded.email_method, email_address = excluded.email_address,
				exchange_username = excluded.exchange_username, exchange_password = excluded.exchange_password,
				exchange_password_set = excluded.exchange_password_set, copy_to_self = excluded.copy_to_self,
				signature = excluded.signature, updated_at = excluded.updated_at`,
			u.Name, nullString(u.EmailMethod), nullString(u.EmailAddress), nullString(u.ExchangeUsername), pw, u.ExchangePassword != nil,
			nullString(u.CopyToSelf), nullString(u.Signature), s.stamp()); err != nil {
			return fmt.Errorf("write user %s: %w", u.Name, err)
		}
		return s.audit(ctx, tx, actor, "users["+u.Name+"]", store.UserChanges(old, u))
	})
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, name, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		us, err := s.users(ctx, tx, name)
		if err != nil {
			return err
		}
		if len(us) == 0 {
			return fmt.Errorf("user %s: %w", name, store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, us[0].Name); err != nil {
			return fmt.Errorf("delete user %s: %w", name, err)
		}
		return s.audit(ctx, tx, actor, "users["+us[0].Name+"]", []store.Change{{Field: "(user)", Old: "has e-mail settings", New: "removed"}})
	})
}

// IncomingAccounts implements store.Store.
func (s *Store) IncomingAccounts(ctx context.Context) ([]settings.IncomingAccount, error) {
	return s.accounts(ctx, s.db, "")
}

// IncomingAccount implements store.Store.
func (s *Store) IncomingAccount(ctx context.Context, address string) (settings.IncomingAccount, error) {
	as, err := s.accounts(ctx, s.db, address)
	if err != nil {
		return settings.IncomingAccount{}, err
	}
	if len(as) == 0 {
		return settings.IncomingAccount{}, fmt.Errorf("incoming account %s: %w", address, store.ErrNotFound)
	}
	return as[0], nil
}

func (s *Store) accounts(ctx context.Context, q queryer, address string) ([]settings.IncomingAccount, error) {
	query := `SELECT id, address, type, exchange_username, exchange_password, available_to, client_id, tenant_id, auth_flow, client_secret, client_secret_set, client_secret_expires, folder, processed_folder, failed_folder, leave_in_place, poll_seconds FROM incoming_accounts`
	var args []any
	if address != "" {
		query += ` WHERE address = ?`
		args = append(args, strings.TrimSpace(address))
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read incoming accounts: %w", err)
	}
	defer rows.Close()
	var out []settings.IncomingAccount
	for rows.Next() {
		var a settings.IncomingAccount
		var pw, secret []byte
		var avail string
		var clientID, tenantID, flow, expires sql.NullString
		var secretSet bool
		var pollSeconds int64
		if err := rows.Scan(&a.ID, &a.Address, &a.Type, &a.ExchangeUsername, &pw, &avail, &clientID, &tenantID, &flow, &secret, &secretSet, &expires,
			&a.Folder, &a.ProcessedFolder, &a.FailedFolder, &a.LeaveInPlace, &pollSeconds); err != nil {
			return nil, fmt.Errorf("read incoming accounts: %w", err)
		}
		a.PollInterval = time.Duration(pollSeconds) * time.Second
		if err := json.Unmarshal([]byte(avail), &a.AvailableTo); err != nil {
			return nil, fmt.Errorf("read incoming account %s: available to: %w", a.Address, err)
		}
		if a.ExchangePassword, err = store.Unseal(s.sealer, pw, store.AccountPasswordField(a.ID)); err != nil {
			return nil, err
		}
		a.ClientID, a.TenantID, a.AuthFlow = fromNull[string](clientID), fromNull[string](tenantID), fromNull[settings.AuthFlow](flow)
		if secretSet {
			sec, err := store.Unseal(s.sealer, secret, store.AccountClientSecretField(a.ID))
			if err != nil {
				return nil, err
			}
			a.ClientSecret = &sec
		}
		if expires.Valid {
			d, err := settings.ParseDate(expires.String)
			if err != nil && expires.String != "" {
				return nil, fmt.Errorf("read incoming account %s: client secret expiry %q: %w", a.Address, expires.String, err)
			}
			a.ClientSecretExpires = &d
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// AddIncomingAccount implements store.Store.
func (s *Store) AddIncomingAccount(ctx context.Context, a settings.IncomingAccount, actor string) (settings.IncomingAccount, error) {
	a.Address = strings.TrimSpace(a.Address)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if as, err := s.accounts(ctx, tx, a.Address); err != nil {
			return err
		} else if len(as) > 0 {
			return fmt.Errorf("incoming account %s: %w", a.Address, store.ErrExists)
		}
		now := s.stamp()
		res, err := tx.ExecContext(ctx, `INSERT INTO incoming_accounts (address, type, created_at, updated_at) VALUES (?, ?, ?, ?)`, a.Address, a.Type, now, now)
		if err != nil {
			return fmt.Errorf("add incoming account %s: %w", a.Address, err)
		}
		if a.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		if err := s.writeAccount(ctx, tx, a); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "incoming["+a.Address+"]", store.AccountChanges(nil, &a))
	})
	return a, err
}

// PutIncomingAccount implements store.Store.
func (s *Store) PutIncomingAccount(ctx context.Context, a settings.IncomingAccount, actor string) error {
	a.Address = strings.TrimSpace(a.Address)
	return s.tx(ctx, func(tx *sql.Tx) error {
		old, err := s.accountByID(ctx, tx, a.ID)
		if err != nil {
			return err
		}
		if !strings.EqualFold(old.Address, a.Address) {
			if as, err := s.accounts(ctx, tx, a.Address); err != nil {
				return err
			} else if len(as) > 0 {
				return fmt.Errorf("incoming account %s: %w", a.Address, store.ErrExists)
			}
		}
		if err := s.writeAccount(ctx, tx, a); err != nil {
			return err
		}
		return s.audit(ctx, tx, actor, "incoming["+a.Address+"]", store.AccountChanges(&old, &a))
	})
}

func (s *Store) accountByID(ctx context.Context, tx *sql.Tx, id int64) (settings.IncomingAccount, error) {
	var addr string
	if err := tx.QueryRowContext(ctx, `SELECT address FROM incoming_accounts WHERE id = ?`, id).Scan(&addr); errors.Is(err, sql.ErrNoRows) {
		return settings.IncomingAccount{}, fmt.Errorf("incoming account %d: %w", id, store.ErrNotFound)
	} else if err != nil {
		return settings.IncomingAccount{}, err
	}
	as, err := s.accounts(ctx, tx, addr)
	if err != nil {
		return settings.IncomingAccount{}, err
	}
	return as[0], nil
}

// writeAccount writes every field of an existing row.
func (s *Store) writeAccount(ctx context.Context, tx *sql.Tx, a settings.IncomingAccount) error {
	pw, err := store.Seal(s.sealer, a.ExchangePassword, store.AccountPasswordField(a.ID))
	if err != nil {
		return err
	}
	var secret []byte
	if a.ClientSecret != nil {
		if secret, err = store.Seal(s.sealer, *a.ClientSecret, store.AccountClientSecretField(a.ID)); err != nil {
			return err
		}
	}
	var expires sql.NullString
	if a.ClientSecretExpires != nil {
		expires = sql.NullString{String: a.ClientSecretExpires.String(), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `UPDATE incoming_accounts SET address = ?, type = ?, exchange_username = ?, exchange_password = ?, available_to = ?,
		client_id = ?, tenant_id = ?, auth_flow = ?, client_secret = ?, client_secret_set = ?, client_secret_expires = ?,
		folder = ?, processed_folder = ?, failed_folder = ?, leave_in_place = ?, poll_seconds = ?, updated_at = ? WHERE id = ?`,
		a.Address, a.Type, a.ExchangeUsername, pw, jsonText(nonNil(a.AvailableTo)), nullString(a.ClientID), nullString(a.TenantID), nullString(a.AuthFlow),
		secret, a.ClientSecret != nil, expires, a.Folder, a.ProcessedFolder, a.FailedFolder, a.LeaveInPlace, int64(a.PollInterval/time.Second), s.stamp(), a.ID)
	if err != nil {
		return fmt.Errorf("write incoming account %s: %w", a.Address, err)
	}
	return nil
}

// RemoveIncomingAccount implements store.Store.
func (s *Store) RemoveIncomingAccount(ctx context.Context, address, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		as, err := s.accounts(ctx, tx, address)
		if err != nil {
			return err
		}
		if len(as) == 0 {
			return fmt.Errorf("incoming account %s: %w", address, store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM incoming_accounts WHERE id = ?`, as[0].ID); err != nil {
			return fmt.Errorf("remove incoming account %s: %w", address, err)
		}
		return s.audit(ctx, tx, actor, "incoming["+as[0].Address+"]", store.AccountChanges(&as[0], nil))
	})
}

// Webshop implements store.Store.
func (s *Store) Webshop(ctx context.Context) (settings.Webshop, error) { return s.webshop(ctx, s.db) }

func (s *Store) webshop(ctx context.Context, q queryer) (settings.Webshop, error) {
	var w settings.Webshop
	err := q.QueryRowContext(ctx, `SELECT email_method FROM webshop_settings WHERE id = 1`).Scan(&w.EmailMethod)
	if errors.Is(err, sql.ErrNoRows) {
		return w, nil
	}
	if err != nil {
		return w, fmt.Errorf("read webshop settings: %w", err)
	}
	return w, nil
}

// PutWebshop implements store.Store.
func (s *Store) PutWebshop(ctx context.Context, w settings.Webshop, actor string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		old, err := s.webshop(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webshop_settings (id, email_method, updated_at) VALUES (1, ?, ?)
			ON CONFLICT (id) DO UPDATE SET email_method = excluded.email_method, updated_at = excluded.updated_at`, w.EmailMethod, s.stamp()); err != nil {
			return fmt.Errorf("write webshop settings: %w", err)
		}
		return s.audit(ctx, tx, actor, "webshop", store.WebshopChanges(old, w))
	})
}
