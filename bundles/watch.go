package bundles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long Watch waits after the last change before it
// reloads: an editor's save or a git checkout is many events.
const DefaultDebounce = 200 * time.Millisecond

// Watch reloads the bundles at paths with LoadPaths (all or nothing: a
// broken change is logged and the active bundle keeps serving) whenever a
// file in them changes, debounce after the last change. Directories are
// watched with every subdirectory, including ones created later; for a
// .tar.gz path its directory is watched and only that file counts. Hidden
// directories (.git) are not watched, as Load skips them. Watch blocks until
// ctx is done and returns nil then, or returns an error if watching cannot
// start. A debounce of zero or less means DefaultDebounce.
func (m *Manager) Watch(ctx context.Context, paths []string, debounce time.Duration) error {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("bundle watch: %w", err)
	}
	defer w.Close()
	files := map[string]bool{} // archive paths watched through their directory
	var trees []string
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("bundle watch %s: %w", p, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return fmt.Errorf("bundle watch: %w", err)
		}
		if !fi.IsDir() {
			files[abs] = true
			if err := w.Add(filepath.Dir(abs)); err != nil {
				return fmt.Errorf("bundle watch %s: %w", p, err)
			}
			continue
		}
		if err := addTree(w, abs); err != nil {
			return fmt.Errorf("bundle watch %s: %w", p, err)
		}
		trees = append(trees, abs)
	}
	m.log.Info("watching bundles for changes", "paths", paths, "debounce", debounce)
	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			m.log.Warn("bundle watch error", "error", err)
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if !relevant(ev, files, trees) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && !hidden(ev.Name) {
					// A new directory: watch it (and anything already in it,
					// which the reload below reads anyway).
					if err := addTree(w, ev.Name); err != nil {
						m.log.Warn("bundle watch: cannot watch a new directory", "path", ev.Name, "error", err)
					}
				}
			}
			timer.Reset(debounce)
		case <-timer.C:
			m.log.Info("bundle change seen; reloading", "paths", paths)
			// LoadPaths logs the outcome: activated, or rejected with the
			// active bundle left serving.
			_, _ = m.LoadPaths(ctx, paths)
		}
	}
}

// relevant reports whether ev may change a watched bundle: it names a
// watched archive, or a non-hidden entry under a watched tree.
func relevant(ev fsnotify.Event, files map[string]bool, trees []string) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	if files[ev.Name] {
		return true
	}
	if hidden(ev.Name) {
		return false
	}
	for _, t := range trees {
		if ev.Name == t || strings.HasPrefix(ev.Name, t+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func hidden(p string) bool {
	base := filepath.Base(p)
	return strings.HasPrefix(base, ".") && base != ".manifest" && base != ".signatures.json"
}

// addTree watches root and every directory below it except hidden ones.
func addTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && hidden(p) {
			return filepath.SkipDir
		}
		return w.Add(p)
	})
}
