//! What a report shows besides numbers: the timeline picture of a re-voiced file (the
//! original utterances on one lane, the new ones below, coloured by how they fit — fits,
//! sped up, runs over — with a time axis), and the process's peak memory.

use std::path::Path;

/// One utterance on the timeline, in seconds of the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimelineRow {
    pub original: (f64, f64),
    pub new: (f64, f64),
    pub speed: f64,
    /// Seconds at the end of the new speech that run into the next utterance.
    pub overrun: f64,
}

const WIDTH: usize = 1600;
const HEIGHT: usize = 230;
const LEFT: usize = 130;
const RIGHT: usize = 20;
const ORIGINAL_LANE: (usize, usize) = (60, 110);
const NEW_LANE: (usize, usize) = (130, 180);
const AXIS: usize = 190;
const SCALE: usize = 2;

type Rgb = [u8; 3];
const BACKGROUND: Rgb = [255, 255, 255];
const LANE: Rgb = [238, 238, 238];
const INK: Rgb = [40, 40, 40];
const GRID: Rgb = [200, 200, 200];
const ORIGINAL: Rgb = [66, 110, 200];
const FITS: Rgb = [52, 160, 83];
const SPED_UP: Rgb = [235, 170, 0];
const OVERRUN: Rgb = [220, 50, 40];

/// Draw the timeline of `rows` over `duration` seconds and write it as a PNG to `path`
/// (through a temporary file, renamed into place).
pub fn write_timeline_png(rows: &[TimelineRow], duration: f64, path: &Path) -> std::io::Result<()> {
    let canvas = draw(rows, duration);
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, WIDTH as u32, HEIGHT as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
        writer.write_image_data(&canvas.pixels).map_err(std::io::Error::other)?;
    }
    crate::sink::write_atomically(path, &bytes)
}

struct Canvas {
    pixels: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Self { pixels: BACKGROUND.repeat(WIDTH * HEIGHT) }
    }

    fn rect(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, color: Rgb) {
        for y in y0.min(HEIGHT)..y1.min(HEIGHT) {
            for x in x0.min(WIDTH)..x1.min(WIDTH) {
                let i = (y * WIDTH + x) * 3;
                self.pixels[i..i + 3].copy_from_slice(&color);
            }
        }
    }

    /// Text in a 5×7 font scaled by [`SCALE`]; returns the x after the last letter.
    fn text(&mut self, mut x: usize, y: usize, s: &str, color: Rgb) -> usize {
        for c in s.chars() {
            let rows = glyph(c);
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..5 {
                    if bits & (0b10000 >> col) != 0 {
                        let (px, py) = (x + col * SCALE, y + r * SCALE);
                        self.rect(px, py, px + SCALE, py + SCALE, color);
                    }
                }
            }
            x += 6 * SCALE;
        }
        x
    }
}

fn text_width(s: &str) -> usize {
    s.chars().count() * 6 * SCALE
}

fn draw(rows: &[TimelineRow], duration: f64) -> Canvas {
    let mut c = Canvas::new();
    let end = rows.iter().map(|r| r.new.1.max(r.original.1)).fold(duration, f64::max).max(1.0);
    let plot = WIDTH - LEFT - RIGHT;
    let x_of = |t: f64| LEFT + ((t.max(0.0) / end) * plot as f64).round() as usize;
    // Legend.
    let mut x = LEFT;
    for (label, color) in [("ORIGINAL", ORIGINAL), ("FITS", FITS), ("SPED UP", SPED_UP), ("OVERRUN", OVERRUN)] {
        c.rect(x, 12, x + 14, 26, color);
        x = c.text(x + 20, 12, label, INK) + 30;
    }
    // Lanes and grid.
    c.text(10, ORIGINAL_LANE.0 + 18, "ORIGINAL", INK);
    c.text(10, NEW_LANE.0 + 18, "NEW", INK);
    c.rect(LEFT, ORIGINAL_LANE.0, LEFT + plot, ORIGINAL_LANE.1, LANE);
    c.rect(LEFT, NEW_LANE.0, LEFT + plot, NEW_LANE.1, LANE);
    let step = tick_step(end);
    let mut t = 0.0;
    while t <= end + 1e-9 {
        let x = x_of(t);
        c.rect(x, ORIGINAL_LANE.0, x + 1, AXIS + 4, GRID);
        let label = tick_label(t, step);
        let left = x.saturating_sub(text_width(&label) / 2).min(WIDTH - text_width(&label));
        c.text(left, AXIS + 10, &label, INK);
        t += step;
    }
    c.rect(LEFT, AXIS, LEFT + plot, AXIS + 1, INK);
    // Utterances.
    for r in rows {
        let (a, b) = (x_of(r.original.0), x_of(r.original.1).max(x_of(r.original.0) + 1));
        c.rect(a, ORIGINAL_LANE.0 + 4, b, ORIGINAL_LANE.1 - 4, ORIGINAL);
        let color = if r.speed > 1.01 { SPED_UP } else { FITS };
        let (a, b) = (x_of(r.new.0), x_of(r.new.1).max(x_of(r.new.0) + 1));
        c.rect(a, NEW_LANE.0 + 4, b, NEW_LANE.1 - 4, color);
        if r.overrun > 0.0 {
            c.rect(x_of(r.new.1 - r.overrun), NEW_LANE.0 + 4, b, NEW_LANE.1 - 4, OVERRUN);
        }
    }
    c
}

/// A round tick spacing giving at most about 16 ticks.
fn tick_step(end: f64) -> f64 {
    const STEPS: [f64; 14] = [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0];
    STEPS.iter().copied().find(|s| end / s <= 16.0).unwrap_or(14_400.0)
}

/// `45S` below ten minutes, `M:SS` or `H:MM:SS` above.
fn tick_label(t: f64, step: f64) -> String {
    let secs = t.round() as u64;
    if step < 60.0 && t < 600.0 {
        format!("{secs}S")
    } else if secs < 3600 {
        format!("{}:{:02}", secs / 60, secs % 60)
    } else {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    }
}

/// The 5×7 pattern of a character (rows top to bottom, bit 4 = leftmost column). Only the
/// characters the picture uses; anything else is blank.
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
        '1' => [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        '2' => [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
        '3' => [0b11110, 0b00001, 0b00001, 0b01110, 0b00001, 0b00001, 0b11110],
        '4' => [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
        '5' => [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
        '6' => [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
        '7' => [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
        '8' => [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
        '9' => [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
        ':' => [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000],
        'A' => [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        'D' => [0b11110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b11110],
        'E' => [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
        'F' => [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
        'G' => [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111],
        'I' => [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        'L' => [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111],
        'N' => [0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0b10001],
        'O' => [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        'P' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
        'R' => [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
        'S' => [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110],
        'T' => [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
        'U' => [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        'V' => [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
        'W' => [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010],
        _ => [0; 7],
    }
}

/// The most resident memory this process has used so far, in bytes (Linux: `VmHWM`).
pub fn peak_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pixel(png_bytes: &[u8], x: usize, y: usize) -> Rgb {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width as usize, info.height as usize), (WIDTH, HEIGHT));
        let i = (y * WIDTH + x) * 3;
        [buf[i], buf[i + 1], buf[i + 2]]
    }

    #[test]
    fn utterances_are_drawn_where_and_how_they_fit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.png");
        let rows = [
            TimelineRow { original: (1.0, 3.0), new: (1.0, 2.5), speed: 1.0, overrun: 0.0 },
            TimelineRow { original: (4.0, 5.0), new: (4.0, 6.0), speed: 1.2, overrun: 0.5 },
        ];
        write_timeline_png(&rows, 10.0, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let plot = (WIDTH - LEFT - RIGHT) as f64;
        let x = |t: f64| LEFT + (t / 10.0 * plot) as usize;
        let mid = |(a, b): (usize, usize)| (a + b) / 2;
        assert_eq!(pixel(&bytes, x(2.0), mid(ORIGINAL_LANE)), ORIGINAL);
        assert_eq!(pixel(&bytes, x(2.0), mid(NEW_LANE)), FITS);
        assert_eq!(pixel(&bytes, x(2.9), mid(NEW_LANE)), LANE, "the new speech ended at 2.5 s");
        assert_eq!(pixel(&bytes, x(4.7), mid(NEW_LANE)), SPED_UP);
        assert_eq!(pixel(&bytes, x(5.8), mid(NEW_LANE)), OVERRUN);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn peak_memory_is_read() {
        let peak = peak_memory_bytes().expect("VmHWM on Linux");
        assert!(peak > 1 << 20, "{peak}");
    }

    #[test]
    fn ticks_stay_few_and_readable() {
        assert_eq!(tick_step(60.0), 5.0);
        assert_eq!(tick_step(3.0 * 3600.0), 900.0);
        assert_eq!(tick_label(45.0, 5.0), "45S");
        assert_eq!(tick_label(900.0, 60.0), "15:00");
        assert_eq!(tick_label(3.0 * 3600.0, 900.0), "3:00:00");
    }
}
