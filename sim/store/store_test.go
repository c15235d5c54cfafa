package store

import (
	"errors"
	"path/filepath"
	"testing"
)

type doc struct {
	Name string
	N    int
}

func TestPutGetSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Tx) error { return tx.Put("docs", "a", doc{"a", 1}) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path, "docs")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got doc
	err = s.View(func(tx *Tx) error {
		ok, err := tx.Get("docs", "a", &got)
		if !ok {
			t.Error("document a missing after reopen")
		}
		return err
	})
	if err != nil || got != (doc{"a", 1}) {
		t.Errorf("got %+v, %v; want {a 1}", got, err)
	}
}

func TestFailedUpdateRollsBack(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), "docs")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("boom")
	err = s.Update(func(tx *Tx) error {
		if err := tx.Put("docs", "a", doc{"a", 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	s.View(func(tx *Tx) error {
		docs, _ := All[doc](tx, "docs")
		if len(docs) != 0 {
			t.Errorf("docs = %v after a failed update, want none", docs)
		}
		return nil
	})
}

func TestSecondOpenIsLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, "docs")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path, "docs"); !errors.Is(err, ErrLocked) {
		t.Errorf("second open: err = %v, want ErrLocked", err)
	}
}
