//! The report as one self-contained HTML page: no network, charts in inline SVG, laid out for
//! A4, with a signature block for the data-protection officer.

use std::fmt::Write;

use super::{Entry, Report};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "
@page { size: A4; margin: 15mm; }
body { font-family: sans-serif; font-size: 10pt; color: #222; max-width: 180mm; margin: auto; }
h1 { font-size: 16pt; margin-bottom: 0; } h2 { font-size: 12pt; margin-top: 14pt; }
table { border-collapse: collapse; margin: 4pt 0; } td, th { border: 1px solid #999; padding: 2pt 6pt; }
th { background: #eee; } .n { text-align: right; }
.overdue { color: #b00; font-weight: bold; } .ok { color: #070; font-weight: bold; }
.sign td { height: 28pt; width: 60mm; } svg { display: block; margin: 4pt 0; }
";

/// The page.
pub fn render(r: &Report) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Retention report {m}</title><style>{STYLE}</style></head><body>\
         <h1>Retention report: certificates sampled in {m}</h1>\
         <p>Generated {g}. Certificates are the service's numbers; no patient data.</p>",
        m = esc(&r.month),
        g = esc(&r.generated_at)
    );
    // What arrived.
    let _ = write!(
        h,
        "<h2>Received: {}</h2><table><tr><th>site (FINESS)</th><th>negative</th>\
         <th>positive</th><th>unknown</th></tr>",
        r.received
    );
    for (site, results) in &r.by_site {
        let n = |k: &str| results.get(k).copied().unwrap_or(0);
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(site),
            n("negative"),
            n("positive"),
            n("unknown")
        );
    }
    h.push_str("</table><table><tr>");
    for k in r.outcomes.keys() {
        let _ = write!(h, "<th>{}</th>", esc(k));
    }
    h.push_str("</tr><tr>");
    for n in r.outcomes.values() {
        let _ = write!(h, "<td class=n>{n}</td>");
    }
    h.push_str("</tr></table>");
    // What became of them.
    let f = &r.finals;
    let _ = write!(
        h,
        "<h2>Final state</h2><table><tr><th>purged on time</th><th>purged late</th>\
         <th>still held</th><th>overdue, not purged</th><th>never kept</th></tr>\
         <tr><td class=n id=on-time>{}</td><td class=n id=late>{}</td><td class=n id=held>{}</td>\
         <td class=\"n {}\" id=overdue>{}</td><td class=n>{}</td></tr></table>\
         <p>On time: purged at most {} s after the due time.</p>",
        f.purged_on_time,
        f.purged_late,
        f.held,
        if f.overdue == 0 { "ok" } else { "overdue" },
        f.overdue,
        f.not_kept,
        r.on_time_tolerance_seconds
    );
    if r.overdue.is_empty() {
        h.push_str("<p class=ok>No certificate is overdue.</p>");
    } else {
        h.push_str("<p class=overdue>Overdue and not purged (must be empty):</p>");
        entries(&mut h, &r.overdue, "overdue");
    }
    if !r.late.is_empty() {
        h.push_str("<p>Purged late:</p>");
        entries(&mut h, &r.late, "");
    }
    h.push_str("<h2>Certificates held over time, by rule</h2>");
    held_chart(&mut h, r);
    h.push_str("<h2>Purge lateness</h2>");
    histogram(&mut h, &r.lateness_histogram);
    let q = &r.quarantine;
    let _ = write!(
        h,
        "<h2>Quarantine and clock</h2><p>{} quarantined ({}), {} released, {} discarded, {} still \
         in quarantine. Clock holds this month: {}.</p>",
        q.quarantined,
        q.reasons
            .iter()
            .map(|(k, n)| format!("{} {n}", esc(k)))
            .collect::<Vec<_>>()
            .join(", "),
        q.released,
        q.discarded,
        q.still_in_quarantine,
        r.clock_holds
    );
    h.push_str("<h2>A certificate's life</h2>");
    lifecycle(&mut h);
    let l = &r.retention_log;
    let _ = write!(
        h,
        "<h2>Retention log</h2><p class={}>{}: {} records; head <code>{}</code>{}</p>",
        if l.intact { "ok" } else { "overdue" },
        if l.intact { "Chain intact" } else { "BROKEN" },
        l.records,
        esc(&l.head),
        l.problem
            .as_deref()
            .map(|p| format!(" ({})", esc(p)))
            .unwrap_or_default()
    );
    h.push_str(
        "<h2>Signature</h2><table class=sign><tr><th>data-protection officer</th><th>date</th>\
         <th>signature</th></tr><tr><td></td><td></td><td></td></tr></table></body></html>\n",
    );
    h
}

fn entries(h: &mut String, list: &[Entry], class: &str) {
    let _ = write!(
        h,
        "<table class=\"{class}\"><tr><th>certificate</th><th>site</th><th>rule</th><th>due</th>\
         <th>purged</th><th>late by</th></tr>"
    );
    for e in list {
        let _ = write!(
            h,
            "<tr><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td></tr>",
            e.certificate,
            esc(e.site.as_deref().unwrap_or("-")),
            esc(&e.rule),
            esc(&e.due),
            esc(e.purged_at.as_deref().unwrap_or("not purged")),
            e.lateness_seconds
                .map(|s| format!("{s} s"))
                .unwrap_or_default()
        );
    }
    h.push_str("</table>");
}

fn held_chart(h: &mut String, r: &Report) {
    let (w, ht, pad) = (640.0, 180.0, 30.0);
    let days = r.held_over_time.len().max(2) as f64;
    let max = r
        .held_over_time
        .iter()
        .map(|d| d.negative.max(d.positive).max(d.quarantine))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" \
         viewBox=\"0 0 {w} {ht}\"><rect width=\"{w}\" height=\"{ht}\" fill=\"#fafafa\" stroke=\"#999\"/>\
         <text x=\"4\" y=\"14\" font-size=\"10\">{max}</text>\
         <text x=\"4\" y=\"{}\" font-size=\"10\">0</text>",
        ht - 4.0
    );
    for (name, color, pick) in [
        ("negative", "#2a7", 0usize),
        ("positive", "#c33", 1),
        ("quarantine", "#36c", 2),
    ] {
        let points: Vec<String> = r
            .held_over_time
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let v = [d.negative, d.positive, d.quarantine][pick] as f64;
                let x = pad + (w - 2.0 * pad) * i as f64 / (days - 1.0);
                let y = ht - pad - (ht - 2.0 * pad) * v / max;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            h,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\
             <text x=\"{}\" y=\"14\" font-size=\"10\" fill=\"{color}\">{name}</text>",
            points.join(" "),
            pad + 90.0 * pick as f64 + 40.0
        );
    }
    if let (Some(a), Some(b)) = (r.held_over_time.first(), r.held_over_time.last()) {
        let _ = write!(
            h,
            "<text x=\"{pad}\" y=\"{}\" font-size=\"10\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\">{}</text>",
            ht - 8.0,
            esc(&a.day),
            w - pad,
            ht - 8.0,
            esc(&b.day)
        );
    }
    h.push_str("</svg>");
}

fn histogram(h: &mut String, buckets: &[(String, usize)]) {
    let (w, ht) = (640.0, 140.0);
    let max = buckets.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let bw = w / buckets.len().max(1) as f64;
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" \
         viewBox=\"0 0 {w} {ht}\"><rect width=\"{w}\" height=\"{ht}\" fill=\"#fafafa\" stroke=\"#999\"/>"
    );
    for (i, (label, n)) in buckets.iter().enumerate() {
        let bh = (ht - 40.0) * *n as f64 / max;
        let x = i as f64 * bw + 10.0;
        let color = if i == 0 { "#2a7" } else { "#c63" };
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{n}</text>\
             <text x=\"{x:.1}\" y=\"{}\" font-size=\"10\">{}</text>",
            ht - 20.0 - bh,
            bw - 20.0,
            x + 4.0,
            ht - 24.0 - bh,
            ht - 6.0,
            esc(label)
        );
    }
    h.push_str("</svg>");
}

/// The life-cycle of a certificate, as the retention log records it.
fn lifecycle(h: &mut String) {
    let boxes = [
        (10, 40, "received"),
        (150, 10, "delivered"),
        (150, 70, "quarantined"),
        (150, 130, "expired (not kept)"),
        (310, 10, "handed_to_sil / removed_by_site / printed"),
        (310, 70, "released / discarded"),
        (520, 40, "purged"),
    ];
    h.push_str(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"170\" viewBox=\"0 0 640 170\">\
         <defs><marker id=\"a\" markerWidth=\"8\" markerHeight=\"8\" refX=\"8\" refY=\"4\" orient=\"auto\">\
         <path d=\"M0,0 L8,4 L0,8 z\" fill=\"#555\"/></marker></defs>",
    );
    for (x, y, label) in boxes {
        let width = if label.len() > 20 { 200 } else { 110 };
        let _ = write!(
            h,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{width}\" height=\"26\" rx=\"4\" fill=\"#eef\" \
             stroke=\"#557\"/><text x=\"{}\" y=\"{}\" font-size=\"10\">{label}</text>",
            x + 6,
            y + 17
        );
    }
    for (x1, y1, x2, y2) in [
        (120, 53, 150, 23),
        (120, 53, 150, 83),
        (120, 53, 150, 143),
        (260, 23, 310, 23),
        (260, 83, 310, 83),
        (510, 23, 520, 50),
        (420, 83, 520, 56),
        (260, 20, 520, 45),
    ] {
        let _ = write!(
            h,
            "<line x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\" stroke=\"#555\" marker-end=\"url(#a)\"/>"
        );
    }
    h.push_str("</svg>");
}
