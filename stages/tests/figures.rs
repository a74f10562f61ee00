//! The report's figures: drawn from synthetic scores, read back as SVG text.

use oodpipe_stages::figures::{self, Scored};

/// `n` samples of N(mean, sd), deterministic (a small LCG and Box-Muller).
fn gaussian(n: usize, mean: f64, sd: f64, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            mean + sd * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        })
        .collect()
}

/// The points of every `<polyline>` whose stroke is `colour` (`#RRGGBB`, any case).
fn polylines(svg: &str, colour: &str) -> Vec<Vec<(f64, f64)>> {
    svg.split('<')
        .filter(|el| el.starts_with("polyline") && el.to_ascii_uppercase().contains(&format!("STROKE=\"{}\"", colour.to_ascii_uppercase())))
        .map(|el| {
            let points = el.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
            points
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect()
        })
        .collect()
}

fn hex(c: plotters::style::RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

#[test]
fn a_roc_figure_has_its_labels_title_legend_and_curves_from_0_0_to_1_1() {
    let (in_a, out_a) = (gaussian(2000, 2.0, 1.0, 1), gaussian(500, 0.0, 1.0, 2));
    // Log-confidence-like scores: very negative, on another scale.
    let (in_b, out_b) = (gaussian(2000, -50.0, 20.0, 3), gaussian(500, -80.0, 30.0, 4));
    let curves = [
        Scored { label: "ODIN", colour: 2, in_scores: &in_a, out_scores: &out_a },
        Scored { label: "VIBY-II", colour: 7, in_scores: &in_b, out_scores: &out_b },
    ];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roc_gaussian.svg");
    let aurocs = figures::roc_figure(&path, "Gaussian Noise", &curves).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.len() < 200_000, "{} bytes", svg.len());

    assert!(svg.contains(figures::FPR_LABEL) && svg.contains(figures::TPR_LABEL));
    assert!(svg.contains("Gaussian Noise"), "no title");
    for (c, auroc) in curves.iter().zip(&aurocs) {
        let expected = oodpipe_metrics::ood_metrics(c.in_scores, c.out_scores).unwrap().auroc;
        assert_eq!(*auroc, expected);
        let entry = format!("{} (AUROC {:.2}%)", c.label, 100.0 * expected);
        assert_eq!(entry, figures::legend_entry(c.label, expected));
        assert_eq!(svg.matches(&entry).count(), 1, "legend entry {entry}");
    }
    assert!(aurocs[0] > 0.85 && aurocs[0] < 0.99, "{aurocs:?}");
    assert!(svg.contains("chance"));

    // Each method: one curve (many points) and one legend sample (two points), in its colour.
    let mut ends = Vec::new();
    for c in &curves {
        let lines = polylines(&svg, &hex(figures::PALETTE[c.colour]));
        assert_eq!(lines.len(), 2, "{}: {lines:?}", c.label);
        let curve = lines.iter().find(|l| l.len() > 2).unwrap();
        assert!(curve.len() <= figures::MAX_ROC_POINTS);
        let (first, last) = (curve[0], curve[curve.len() - 1]);
        // Pixels: y grows downwards, so (0, 0) is the bottom-left and (1, 1) the top-right.
        for &(x, y) in curve {
            assert!(x >= first.0 && x <= last.0 && y <= first.1 && y >= last.1, "{:?} outside {first:?}..{last:?}", (x, y));
        }
        assert!(last.0 - first.0 > 400.0 && first.1 - last.1 > 400.0, "{first:?} {last:?}");
        ends.push((first, last));
    }
    assert_eq!(ends[0], ends[1], "both curves run from (0, 0) to (1, 1)");
}

#[test]
fn a_histogram_figure_has_both_sets_as_fractions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hist_bin_tin_crop.svg");
    let mut ins = gaussian(10_000, -0.1, 0.05, 5);
    ins.push(-1e6); // one extreme outlier must not flatten the plot
    let outs = gaussian(1_000, -2.0, 1.0, 6);
    figures::histogram_figure(&path, "BIN", "Tiny ImageNet (crop)", &ins, &outs).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    for text in ["CIFAR-10 (in)", "Tiny ImageNet (crop) (out)", figures::SCORE_LABEL, figures::FRACTION_LABEL, "BIN"] {
        assert!(svg.contains(text), "no `{text}`");
    }
    assert!(svg.contains("percentile"), "the outlier should narrow the range");
    assert!(svg.len() < 200_000);

    let (lo, hi, clipped) = figures::histogram_range(&ins, &outs);
    assert!(clipped && lo > -10.0 && hi < 1.0, "{lo} {hi}");
    for scores in [&ins, &outs] {
        let f = figures::bin_fractions(scores, lo, hi, figures::BINS);
        assert_eq!(f.len(), figures::BINS);
        assert!((f.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }
    // Equal scores still get a range.
    let (lo, hi, _) = figures::histogram_range(&[3.0; 5], &[3.0; 2]);
    assert!(lo < 3.0 && hi > 3.0);
}

#[test]
fn downsampling_keeps_the_endpoints_at_most_n_points_and_the_order() {
    let in_s = gaussian(10_000, 1.0, 1.0, 7);
    let out_s = gaussian(1_000, 0.0, 1.0, 8);
    let roc = oodpipe_metrics::roc_curve(&in_s, &out_s).unwrap();
    assert!(roc.len() > 10_000);
    for max in [2, 3, 10, 1000] {
        let d = figures::downsample(&roc, max);
        assert!(d.len() <= max && d.len() >= 2.min(max), "{max}: {}", d.len());
        assert_eq!(d[0], (0.0, 0.0));
        assert_eq!(*d.last().unwrap(), (1.0, 1.0));
        assert!(d.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "not monotone");
        assert!(d.iter().all(|p| roc.contains(p)), "a point not on the curve");
    }
    // Close to the limit: the path is well covered (no gap longer than a few steps).
    let d = figures::downsample(&roc, 1000);
    assert!(d.len() > 900, "{}", d.len());
    let gap = d.windows(2).map(|w| (w[1].0 - w[0].0) + (w[1].1 - w[0].1)).fold(0.0, f64::max);
    assert!(gap < 0.01, "{gap}");
    // Short curves are kept whole.
    assert_eq!(figures::downsample(&roc[..5], 10), roc[..5].to_vec());
}
