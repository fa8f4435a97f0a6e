package file

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/ecadlabs/gotez/v2/b58"
)

// The journal (on unless watermark.config.journal: false) makes a group commit one write and one
// fdatasync into a preallocated file, instead of a temp file, an fsync, a rename and a directory
// fsync (measured here: 0.10 ms against 0.67 ms). One journal serves every chain of the store:
// each chain's writer judges its own batch, then hands its changes to the journal, and the
// changes of every chain handed in while the previous write was in flight go out as one record,
// with one fdatasync (see journal.append). A chain file is rewritten from memory at most
// chain_file_lag (default 1 s) after a journaled change, the journal staying (see chain.refresh),
// so that the reference's files are never more than that behind while running.
//
// all-chains.<epoch>.journal is created zero-filled and holds records back to back from offset 0:
//
//	magic "SWJ2" | epoch uint64 | payload length uint32 | CRC-32C of the payload uint32 | payload
//
// (little-endian). A payload is a JSON object {chain id: chain file}, each chain file (the
// reference's format) holding only the slots a batch changed. Marks only ever rise, so a chain's
// state is its chain file's marks raised by every record's (a higher level and round, or the same
// with a signature): replaying a record twice, or one older than the chain file, changes nothing.
// That makes compaction simple: when a record does not fit, every chain with marks in the journal
// has them written into its chain file (the usual durable replace), the journal is removed and
// one of the next epoch created; a crash anywhere in between leaves records that raise nothing.
// The background rewrite of a chain file is the same first step, for one chain, without the rest.
//
// Reading stops at the first record that is not whole: the torn tail of a write that was never
// acknowledged (each is acknowledged only after its fdatasync, and the next is written only then,
// so at most the last record can be torn). Since a journal file only ever holds its own records
// after zeros, a whole record further on means a record in the middle is damaged: then the store
// refuses to sign on every chain until the operator repairs it (which chains the damaged record
// held cannot be known), as a chain does for its corrupt chain file.
//
// Versions before the store-wide journal kept one journal per chain, <chain>.<epoch>.journal,
// magic "SWJ1", each payload one chain file; Open still replays those (an upgrade after a crash).

const (
	journalSuffix      = ".journal"
	storeJournalPrefix = "all-chains."
	storeMagic         = "SWJ2"
	chainMagic         = "SWJ1" // per-chain journals of earlier versions
	journalHeader      = 4 + 8 + 4 + 4
	// DefaultJournalSize is the least preallocated size of a journal: about 2 500 records of one
	// signed mark between two compactions.
	DefaultJournalSize = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// maxJournalFile bounds the journal files Open reads: a larger one is damage (the store writes
// journals of four times its chain files, and a chain file of 100,000 keys is about 20 MiB). A
// variable, so that a test can lower it.
var maxJournalFile = 1 << 30

// journalRecord is one parsed record.
type journalRecord struct {
	epoch   uint64
	payload []byte
	size    int // header + payload
}

// parseRecord parses the record of magic at the start of b; ok is false when there is none whole.
func parseRecord(b []byte, magic string) (journalRecord, bool) {
	return parseRecordOf(b, magic, nil)
}

// parseRecordOf is parseRecord of a record of epoch, when epoch is not nil: a record of another
// epoch is no record, found without computing its checksum.
func parseRecordOf(b []byte, magic string, epoch *uint64) (journalRecord, bool) {
	if len(b) < journalHeader || string(b[:4]) != magic {
		return journalRecord{}, false
	}
	e := binary.LittleEndian.Uint64(b[4:])
	if epoch != nil && e != *epoch {
		return journalRecord{}, false
	}
	n := int(binary.LittleEndian.Uint32(b[12:]))
	sum := binary.LittleEndian.Uint32(b[16:])
	if n > len(b)-journalHeader {
		return journalRecord{}, false
	}
	payload := b[journalHeader : journalHeader+n]
	if crc32.Checksum(payload, crcTable) != sum {
		return journalRecord{}, false
	}
	return journalRecord{epoch: e, payload: payload, size: journalHeader + n}, true
}

func appendRecord(dst []byte, magic string, epoch uint64, payload []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, journalHeader)...)
	dst = append(dst, payload...)
	putHeader(dst[n:], magic, epoch)
	return dst
}

// putHeader fills the header at the start of rec, whose payload follows it to its end.
func putHeader(rec []byte, magic string, epoch uint64) {
	payload := rec[journalHeader:]
	copy(rec, magic)
	binary.LittleEndian.PutUint64(rec[4:], epoch)
	binary.LittleEndian.PutUint32(rec[12:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[16:], crc32.Checksum(payload, crcTable))
}

// replayRecords calls apply with the payload of every whole record of magic and epoch at the start
// of data, in order, and returns the offset after the last one. A whole record after the first
// one that is not is damage, and an error.
func replayRecords(data []byte, magic string, epoch uint64, apply func([]byte) error) (tail int, err error) {
	if len(data) > maxJournalFile {
		return 0, fmt.Errorf("%d bytes, more than any journal this store writes (%d)", len(data), maxJournalFile)
	}
	for {
		r, ok := parseRecordOf(data[tail:], magic, &epoch)
		if !ok {
			break
		}
		if err := apply(r.payload); err != nil {
			return 0, fmt.Errorf("record at offset %d: %w", tail, err)
		}
		tail += r.size
	}
	for i := tail + 1; i+journalHeader <= len(data); i++ {
		if _, ok := parseRecordOf(data[i:], magic, &epoch); ok {
			return 0, fmt.Errorf("the record at offset %d is damaged, and acknowledged records follow it (offset %d)", tail, i)
		}
	}
	return tail, nil
}

// replayJournal raises st by the records of a per-chain journal's content (of epoch) and
// returns the offset after the last one.
func replayJournal(st *state, data []byte, epoch uint64) (int, error) {
	return replayRecords(data, chainMagic, epoch, func(payload []byte) error {
		part, err := decode(payload)
		if err == nil {
			raise(st, part)
		}
		return err
	})
}

// replayStoreJournal calls apply with each chain's part of every record of a store journal's
// content (of epoch), in order, and returns the offset after the last record.
func replayStoreJournal(data []byte, epoch uint64, apply func(chain string, part *state)) (int, error) {
	return replayRecords(data, storeMagic, epoch, func(payload []byte) error {
		var parts map[string]json.RawMessage
		if err := json.Unmarshal(payload, &parts); err != nil || parts == nil {
			return fmt.Errorf("not an object of chains (%v)", err)
		}
		for id, raw := range parts {
			if _, err := b58.ParseChainID([]byte(id)); err != nil {
				return fmt.Errorf("chain %q: %w", id, err)
			}
			part, err := decode(raw)
			if err != nil {
				return fmt.Errorf("chain %s: %w", id, err)
			}
			apply(id, part)
		}
		return nil
	})
}

// raises reports whether sl would raise old: a mark where there was none, a higher one, or the
// same level and round with a signature old lacks.
func raises(old, sl slot) bool {
	return sl.ok && (!old.ok || higher(sl.mark, old.mark) ||
		sameLevelRound(sl.mark, old.mark) && old.mark.Signature == "" && sl.mark.Signature != "")
}

// covers reports whether raising st by part would change nothing.
func covers(st, part *state) bool {
	for pkh, slots := range part.all() {
		cur := st.of(pkh)
		for i, sl := range slots {
			if raises(cur[i], sl) {
				return false
			}
		}
	}
	return true
}

// raise sets every slot of part that is higher than st's (or equal with a signature st lacks).
func raise(st *state, part *state) {
	for pkh, slots := range part.all() {
		cur := st.of(pkh)
		changed := false
		for i, sl := range slots {
			if raises(cur[i], sl) {
				cur[i] = sl
				changed = true
			}
		}
		if changed {
			st.set(pkh, cur)
		}
	}
}

// journalName is the file name of chain's journal of epoch, of the versions that kept one per
// chain.
func journalName(chain string, epoch uint64) string {
	return chain + "." + strconv.FormatUint(epoch, 10) + journalSuffix
}

// storeJournalName is the file name of the store's journal of epoch.
func storeJournalName(epoch uint64) string {
	return storeJournalPrefix + strconv.FormatUint(epoch, 10) + journalSuffix
}

// parseJournalName splits <chain>.<epoch>.journal (chain is "all-chains" for a store journal).
func parseJournalName(name string) (chain string, epoch uint64, ok bool) {
	rest, ok := strings.CutSuffix(name, journalSuffix)
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", 0, false
	}
	epoch, err := strconv.ParseUint(rest[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return rest[:i], epoch, true
}

// startRecordSize is the size of the empty record a journal starts with.
var startRecordSize = int64(len(appendRecord(nil, storeMagic, 0, []byte("{}"))))

// datasync makes a journal's records durable (fdatasync); a variable, so that tests can make it
// fail.
var datasync = fdatasync

var errJournalFull = errors.New("journal full")

// journal is the store's journal. Chain writers call append; whichever of them finds no write in
// flight leads: it writes everything queued as one record, then hands the lead to the first
// writer that queued meanwhile, if any, so that no chain's writer serves the others for long.
type journal struct {
	dir  string
	size int64 // the least size of a new journal
	log  *slog.Logger

	mu      sync.Mutex
	queue   []*appendReq
	leading bool
	err     error // the last failure to start a journal or compact for one, for Health

	// Only the leader touches these (and Close, once the writers have stopped).
	f       *os.File          // the journal in use; nil before the first record and after a failure
	epoch   uint64            // of the newest journal file
	onDisk  bool              // the file of epoch exists
	off     int64             // where the next record goes
	fsize   int64             // of f
	held    map[*chain]*state // every chain's marks in the file of epoch
	buf     []byte
	records int64 // written, for benchmarks
}

// appendReq is one chain's batch handed to the journal.
type appendReq struct {
	c       *chain
	part    *state // the slots the batch changed
	payload []byte // part, encoded
	done    chan appendResult
}

type appendResult struct {
	err  error
	lead bool // not a result: the receiver leads now
}

func newJournal(dir string, size int64, log *slog.Logger) *journal {
	return &journal{dir: dir, size: size, log: log, held: map[*chain]*state{}}
}

// append makes part (encoded as payload) durable as part of one record, and returns nil once it
// is; errJournalFull when the journal cannot take it (the caller writes its chain file instead);
// any other error when the record's write or fdatasync failed (nothing is acknowledged).
func (j *journal) append(c *chain, part *state, payload []byte) error {
	r := &appendReq{c: c, part: part, payload: payload, done: make(chan appendResult, 1)}
	j.mu.Lock()
	j.queue = append(j.queue, r)
	if j.leading {
		j.mu.Unlock()
		if res := <-r.done; !res.lead {
			return res.err
		}
		j.mu.Lock()
	}
	j.leading = true
	batch := j.queue
	j.queue = nil
	j.mu.Unlock()

	j.commit(batch)

	j.mu.Lock()
	if len(j.queue) > 0 {
		j.queue[0].done <- appendResult{lead: true} // buffered and empty: it has no result yet
	} else {
		j.leading = false
	}
	j.mu.Unlock()
	return (<-r.done).err
}

// commit writes batch as one record and answers each request.
func (j *journal) commit(batch []*appendReq) {
	answer := func(err error) {
		for _, r := range batch {
			r.done <- appendResult{err: err}
		}
	}
	j.buf = append(j.buf[:0], make([]byte, journalHeader)...)
	j.buf = append(j.buf, '{')
	for i, r := range batch {
		if i > 0 {
			j.buf = append(j.buf, ',')
		}
		j.buf = strconv.AppendQuote(j.buf, r.c.id)
		j.buf = append(j.buf, ':')
		j.buf = append(j.buf, r.payload...)
	}
	j.buf = append(j.buf, '}')
	n := int64(len(j.buf))
	if j.f == nil || j.off+n > j.fsize {
		if err := j.rotate(n); err != nil {
			j.fail(err)
			answer(errJournalFull)
			return
		}
	}
	putHeader(j.buf, storeMagic, j.epoch)
	j.records++
	_, err := j.f.WriteAt(j.buf, j.off)
	if err == nil {
		err = datasync(j.f)
	}
	if err != nil {
		// The file's content is now unknown: it takes no more records. The next record starts a
		// new journal, after the chains it holds have their acknowledged marks in their chain
		// files. This record's marks are not held: they were never acknowledged, and a chain file
		// must not go above what its chain holds in memory (a crash before that leaves them in
		// this file, which only makes them more conservative).
		j.f.Close()
		j.f = nil
		answer(err)
		return
	}
	j.off += n
	// Held once durable: the next compaction writes them into the chain files.
	for _, r := range batch {
		h := j.held[r.c]
		if h == nil {
			h = emptyState()
			j.held[r.c] = h
		}
		raise(h, r.part)
	}
	j.recovered()
	answer(nil)
}

// rotate brings every chain with marks in the current journal file up to date, removes the file
// and creates the journal of the next epoch, large enough for a record of need bytes.
func (j *journal) rotate(need int64) error {
	var sizes int64
	for c, part := range j.held {
		if err := c.writeRaised(part); err != nil {
			return err
		}
		sizes += c.fileSize.Load()
		delete(j.held, c)
	}
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	if j.onDisk {
		// A journal left behind by a crash here raises nothing: its chains' files hold its marks.
		if err := os.Remove(filepath.Join(j.dir, storeJournalName(j.epoch))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("watermark: cannot remove the full journal: %w", err)
		}
		j.onDisk = false
	}
	size := nextJournalSize(j.size, max(sizes, need))
	epoch := j.epoch + 1
	data := make([]byte, size)
	copy(data, appendRecord(nil, storeMagic, epoch, []byte("{}")))
	path := filepath.Join(j.dir, storeJournalName(epoch))
	j.epoch = epoch
	if err := writeDurable(path, data); err != nil {
		_ = os.Remove(path) // it may be there, not durable
		return fmt.Errorf("watermark: cannot create the journal %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("watermark: cannot open the journal %s: %w", path, err)
	}
	j.f, j.onDisk, j.off, j.fsize = f, true, startRecordSize, size
	return nil
}

// recovered clears the failure Health reports, after a record was written.
func (j *journal) recovered() {
	j.mu.Lock()
	was := j.err
	j.err = nil
	j.mu.Unlock()
	if was != nil && j.log != nil {
		j.log.Info("watermark: journal in use again")
	}
}

// fail records why a full journal could not be replaced (each batch that does not fit it meanwhile
// writes its chain file), and logs it once per outage.
func (j *journal) fail(err error) {
	j.mu.Lock()
	was := j.err
	j.err = err
	j.mu.Unlock()
	if was == nil && j.log != nil {
		j.log.Error("watermark: no journal: every batch writes its chain file until one can be started again", "err", err)
	}
}

func (j *journal) health() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.err
}

// nextJournalSize is the size of a new journal: the configured one, or four times need (the
// chain files of the chains the last one held, or the record that did not fit; rounded up to 64
// KiB) when that is more, so that chains of many keys, whose records are as large, still rewrite
// their chain files only after several of them.
func nextJournalSize(configured, need int64) int64 {
	const unit = 64 << 10
	return max(configured, (4*need+unit-1)/unit*unit)
}

// close closes the journal once the writers have stopped and removes its file when every chain
// it held has its marks in its chain file (clean says so).
func (j *journal) close(clean bool) error {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	if !clean || !j.onDisk {
		return nil
	}
	err := os.Remove(filepath.Join(j.dir, storeJournalName(j.epoch)))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	j.onDisk = false
	return err
}
