//! The default model's world, for tests: the caption grid of scripts/default_model/shapes.py
//! and a deterministic checker (no neural network) that reads back what an image shows, the
//! same algorithm as scripts/default_model/checker.py:
//!
//! 1. every pixel goes to the nearest palette colour (squared RGB distance; ties to the earlier);
//! 2. background = the most common colour on the border (the outermost ring);
//! 3. shape colour = the most common other colour in the image;
//! 4. the shape's box spans the rows and columns with at least `MIN_LINE_PIXELS` shape pixels;
//! 5. triangle when its top half holds under `TRIANGLE_RATIO` of its bottom half's area (an
//!    upward triangle: 1/3; circles and squares: 1);
//! 6. else square when the box's corner patches are more than `SQUARE_CORNER_FILL` filled
//!    (a square's are full, a circle's about 20 %), else circle.

/// Palette colours in the order of shapes.py (ties go to the earlier one).
pub const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [255, 0, 0]),
    ("green", [0, 255, 0]),
    ("blue", [0, 0, 255]),
    ("yellow", [255, 255, 0]),
    ("white", [255, 255, 255]),
    ("black", [0, 0, 0]),
];
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];

const MIN_LINE_PIXELS: usize = 3;
const TRIANGLE_RATIO: f64 = 0.6;
const CORNER_FRACTION: f64 = 0.2;
const SQUARE_CORNER_FILL: f64 = 0.5;

/// What an image shows, or what a caption asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scene {
    pub colour: &'static str,
    pub shape: &'static str,
    pub background: &'static str,
}

impl Scene {
    pub fn caption(&self) -> String {
        format!("a {} {} on a {} background", self.colour, self.shape, self.background)
    }
}

/// Every caption the model was trained on, in shapes.py's order (index = evaluation seed).
pub fn caption_grid() -> Vec<Scene> {
    let mut grid = Vec::new();
    for (colour, _) in COLOURS {
        for shape in SHAPES {
            for (background, _) in COLOURS {
                if background != colour {
                    grid.push(Scene { colour, shape, background });
                }
            }
        }
    }
    grid
}

/// Reads an RGB8 image (`width * height * 3` bytes, no padding).
pub fn check(pixels: &[u8], width: usize, height: usize) -> Scene {
    let classes: Vec<usize> = pixels.chunks_exact(3).map(nearest_colour).collect();
    let mut border = vec![0usize; COLOURS.len()];
    for y in 0..height {
        for x in 0..width {
            if y == 0 || y == height - 1 || x == 0 || x == width - 1 {
                border[classes[y * width + x]] += 1;
            }
        }
    }
    let background = most_common(&border).expect("an image has a border");
    let mut counts = vec![0usize; COLOURS.len()];
    classes.iter().for_each(|&c| counts[c] += 1);
    counts[background] = 0;
    let Some(colour) = most_common(&counts) else {
        return Scene { colour: "none", shape: "none", background: COLOURS[background].0 };
    };
    let mask: Vec<bool> = classes.iter().map(|&c| c == colour).collect();
    Scene { colour: COLOURS[colour].0, shape: shape_of(&mask, width, height), background: COLOURS[background].0 }
}

fn nearest_colour(rgb: &[u8]) -> usize {
    let distance =
        |palette: &[u8; 3]| -> i64 { rgb.iter().zip(palette).map(|(&a, &b)| (a as i64 - b as i64).pow(2)).sum() };
    // min_by_key keeps the first of equal minima, as numpy's argmin.
    (0..COLOURS.len()).min_by_key(|&i| distance(&COLOURS[i].1)).unwrap()
}

/// The index with the highest count (ties to the lower index), or None when all are zero.
fn most_common(counts: &[usize]) -> Option<usize> {
    let best = counts.iter().enumerate().fold(0, |best, (i, &c)| if c > counts[best] { i } else { best });
    (counts[best] > 0).then_some(best)
}

fn shape_of(mask: &[bool], width: usize, height: usize) -> &'static str {
    let at = |x: usize, y: usize| mask[y * width + x];
    let rows: Vec<usize> =
        (0..height).filter(|&y| (0..width).filter(|&x| at(x, y)).count() >= MIN_LINE_PIXELS).collect();
    let cols: Vec<usize> =
        (0..width).filter(|&x| (0..height).filter(|&y| at(x, y)).count() >= MIN_LINE_PIXELS).collect();
    let (Some(&top), Some(&last_row), Some(&left), Some(&last_col)) =
        (rows.first(), rows.last(), cols.first(), cols.last())
    else {
        return "none";
    };
    let (box_h, box_w) = (last_row + 1 - top, last_col + 1 - left);
    let area = |y0: usize, y1: usize, x0: usize, x1: usize| -> usize {
        (y0..y1).map(|y| (x0..x1).filter(|&x| at(left + x, top + y)).count()).sum()
    };
    let half = box_h / 2;
    if (area(0, half, 0, box_w) as f64) < TRIANGLE_RATIO * area(box_h - half, box_h, 0, box_w) as f64 {
        return "triangle";
    }
    // Python's round() rounds halves to even.
    let ch = ((CORNER_FRACTION * box_h as f64).round_ties_even() as usize).max(1);
    let cw = ((CORNER_FRACTION * box_w as f64).round_ties_even() as usize).max(1);
    let corners = [(0, 0), (0, box_w - cw), (box_h - ch, 0), (box_h - ch, box_w - cw)];
    let fill: f64 =
        corners.iter().map(|&(y, x)| area(y, y + ch, x, x + cw) as f64 / (ch * cw) as f64).sum::<f64>() / 4.0;
    if fill > SQUARE_CORNER_FILL {
        "square"
    } else {
        "circle"
    }
}

/// Draws a scene as shapes.py's `render` does (for testing the checker): the shape's box is
/// [x0, x0 + size) x [y0, y0 + size), the triangle points up.
pub fn render(scene: &Scene, size: usize, x0: usize, y0: usize) -> Vec<u8> {
    let rgb = |name: &str| COLOURS.iter().find(|(n, _)| *n == name).unwrap().1;
    let (fg, bg) = (rgb(scene.colour), rgb(scene.background));
    let mut pixels = Vec::with_capacity(64 * 64 * 3);
    for y in 0..64 {
        for x in 0..64 {
            let u = (x as f64 + 0.5 - x0 as f64) / size as f64;
            let v = (y as f64 + 0.5 - y0 as f64) / size as f64;
            let in_box = (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v);
            let inside = match scene.shape {
                "square" => in_box,
                "circle" => (u - 0.5).powi(2) + (v - 0.5).powi(2) <= 0.25,
                _ => in_box && (u - 0.5).abs() <= v / 2.0,
            };
            pixels.extend_from_slice(if inside { &fg } else { &bg });
        }
    }
    pixels
}
