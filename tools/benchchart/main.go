// Command benchchart draws docs/benchmarks.png from the load tool's JSON reports, written by
// scripts/bench.sh into one directory: for every run, its latency percentiles (p50, p90, p99) beside
// those of the floor measured in the same run, on a logarithmic scale, so a reader sees at a glance
// how far each load is from what the machine can do. Usage:
//
//	go run ./tools/benchchart <results dir> <output.png>
package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

type latency struct{ P50, P90, P99 float64 }

type report struct {
	Workload    string  `json:"workload"`
	Concurrency int     `json:"concurrency"`
	Latency     latency `json:"latency_ms"`
	Burst       *struct {
		Ms latency `json:"ms"`
	} `json:"burst"`
}

// row is one bar group: a run and its floor.
type row struct {
	name        string
	ours, floor latency
	floorName   string
}

// runs lists the runs drawn, in order, and the floor each is compared with: the trivial server
// (selftest) at the same concurrency for signing loads, the durable-write floor for durable ones.
var runs = []struct{ name, floor, label string }{
	{"generic-tz1-c1", "selftest-c1", "generic tz1, 1 client"},
	{"generic-tz1-c8", "selftest-c8", "generic tz1, 8 clients"},
	{"generic-tz1-c64", "selftest-c64", "generic tz1, 64 clients"},
	{"generic-tz2-c8", "selftest-c8", "generic tz2, 8 clients"},
	{"generic-tz3-c8", "selftest-c8", "generic tz3, 8 clients"},
	{"generic-tz4-c8", "selftest-c8", "generic tz4, 8 clients"},
	{"consensus-file-tz1-c1", "selftest-c1", "attestation, file (journal), 1 stream"},
	{"consensus-file-tz1-c8", "selftest-c8", "attestation, file (journal), 8 streams"},
	{"consensus-chain-files-tz1-c1", "selftest-c1", "attestation, file without journal, 1 stream"},
	{"consensus-mem-tz1-c8", "selftest-c8", "attestation, mem, 8 streams"},
	{"burst-file-256", "", "burst, 256 keys, file vault (to the last)"},
	{"burst-softhsm-256", "", "burst, 256 keys, SoftHSM2 (to the last)"},
	{"burst-localkms-256", "", "burst, 256 keys, local-kms (to the last)"},
}

func load(dir, name string) (*report, error) {
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return nil, err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &r, nil
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: benchchart <results dir> <output.png>")
		os.Exit(2)
	}
	dir := os.Args[1]
	var rows []row
	for _, r := range runs {
		ours, err := load(dir, r.name)
		if err != nil {
			continue // a run the script did not make on this machine
		}
		rw := row{name: r.label, ours: ours.Latency}
		if ours.Burst != nil {
			rw.ours = ours.Burst.Ms
		}
		if r.floor != "" {
			if f, err := load(dir, r.floor); err == nil {
				rw.floor, rw.floorName = f.Latency, "trivial server"
			}
		}
		rows = append(rows, rw)
	}
	if len(rows) == 0 {
		fmt.Fprintln(os.Stderr, "benchchart: no known run in", dir)
		os.Exit(1)
	}
	img := draw1(rows)
	f, err := os.Create(os.Args[2])
	if err == nil {
		err = png.Encode(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchchart:", err)
		os.Exit(1)
	}
}

var (
	white  = color.RGBA{255, 255, 255, 255}
	black  = color.RGBA{0, 0, 0, 255}
	grey   = color.RGBA{200, 200, 200, 255}
	ours   = [3]color.RGBA{{31, 119, 180, 255}, {98, 160, 210, 255}, {170, 205, 235, 255}}
	floors = [3]color.RGBA{{120, 120, 120, 255}, {160, 160, 160, 255}, {205, 205, 205, 255}}
)

const (
	labelW = 330
	plotW  = 620
	barH   = 7
	left   = labelW + 10
)

// draw1 renders the rows: per row, three bars for ours (p50, p90, p99) and three for the floor, on
// a log scale from 0.01 ms to the largest value.
func draw1(rows []row) image.Image {
	hi := 0.0
	for _, r := range rows {
		hi = math.Max(hi, math.Max(r.ours.P99, r.floor.P99))
	}
	lo := 0.01
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	groupH := 6*barH + 14
	h := 60 + len(rows)*groupH + 50
	img := image.NewRGBA(image.Rect(0, 0, left+plotW+30, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{white}, image.Point{}, draw.Src)
	x := func(ms float64) int {
		ms = math.Max(ms, lo)
		return left + int(float64(plotW)*math.Log10(ms/lo)/math.Log10(hi/lo))
	}
	text(img, 10, 20, "Latency percentiles per load (ms, log scale): Signatory (blue: p50, p90, p99)")
	text(img, 10, 36, "against the floor measured in the same run (grey: a trivial HTTP server, same clients)")
	top := 50
	for d := lo; d <= hi*1.0001; d *= 10 {
		xx := x(d)
		vline(img, xx, top, top+len(rows)*groupH, grey)
		text(img, xx-12, top+len(rows)*groupH+16, trim(d))
	}
	for i, r := range rows {
		y := top + i*groupH + 4
		text(img, 10, y+3*barH+4, r.name)
		for j, v := range []float64{r.ours.P50, r.ours.P90, r.ours.P99} {
			bar(img, left, x(v), y+j*barH, ours[j])
		}
		for j, v := range []float64{r.floor.P50, r.floor.P90, r.floor.P99} {
			if v > 0 {
				bar(img, left, x(v), y+(3+j)*barH, floors[j])
			}
		}
	}
	return img
}

func trim(ms float64) string {
	s := fmt.Sprintf("%g", ms)
	return strings.TrimSuffix(s, ".0")
}

func bar(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	draw.Draw(img, image.Rect(x0, y, max(x1, x0+1), y+barH-1), &image.Uniform{c}, image.Point{}, draw.Src)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y < y1; y++ {
		img.Set(x, y, c)
	}
}

func text(img *image.RGBA, x, y int, s string) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
