// Package store keeps the simulator's durable state: JSON documents in
// named buckets of an embedded transactional database (bbolt), so a server
// killed at any point restarts from the last committed transaction.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrLocked is returned by Open when another process holds the database.
var ErrLocked = errors.New("state database is in use by another process")

// Store is an open state database.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the database at path and makes sure the
// buckets exist.
func Open(path string, buckets ...string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create buckets in %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Update runs fn in a read-write transaction, committed when fn returns nil.
func (s *Store) Update(fn func(*Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(*Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx}) })
}

// Tx is a transaction.
type Tx struct {
	tx *bolt.Tx
}

func (t *Tx) bucket(name string) (*bolt.Bucket, error) {
	b := t.tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("bucket %q does not exist", name)
	}
	return b, nil
}

// Get decodes the document at key into v and reports whether it exists.
func (t *Tx) Get(bucket, key string, v any) (bool, error) {
	b, err := t.bucket(bucket)
	if err != nil {
		return false, err
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

// Put stores v as JSON at key.
func (t *Tx) Put(bucket, key string, v any) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s/%s: %w", bucket, key, err)
	}
	return b.Put([]byte(key), raw)
}

// Delete removes key; removing an absent key is not an error.
func (t *Tx) Delete(bucket, key string) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Delete([]byte(key))
}

// Each calls fn for every document in bucket, in key order.
func Each[T any](t *Tx, bucket string, fn func(key string, v T) error) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("decode %s/%s: %w", bucket, k, err)
		}
		return fn(string(k), v)
	})
}

// All returns every document in bucket, in key order.
func All[T any](t *Tx, bucket string) ([]T, error) {
	var out []T
	err := Each(t, bucket, func(_ string, v T) error {
		out = append(out, v)
		return nil
	})
	return out, err
}
