//! Small instruments: a dial for a percentage and a horizontal meter.

use leptos::prelude::*;

/// Status colour class for a percentage: green, amber at 75, red at 90.
pub fn level_class(percent: f32) -> &'static str {
    if percent >= 90.0 {
        "warning"
    } else if percent >= 75.0 {
        "caution"
    } else {
        "operational"
    }
}

/// A 240° dial. `value` is None until a first sample arrives.
#[component]
pub fn Dial(label: &'static str, value: Signal<Option<f32>>, #[prop(into)] testid: String) -> impl IntoView {
    // Arc from 150° to 390° (clockwise), radius 40, centre (50, 50).
    const SWEEP: f64 = 240.0;
    let arc = move |fraction: f64| -> String {
        let start = 150f64.to_radians();
        let end = (150.0 + SWEEP * fraction.clamp(0.0, 1.0)).to_radians();
        let (x0, y0) = (50.0 + 40.0 * start.cos(), 50.0 + 40.0 * start.sin());
        let (x1, y1) = (50.0 + 40.0 * end.cos(), 50.0 + 40.0 * end.sin());
        let large = if SWEEP * fraction > 180.0 { 1 } else { 0 };
        format!("M {x0:.2} {y0:.2} A 40 40 0 {large} 1 {x1:.2} {y1:.2}")
    };
    let track = arc(1.0);
    view! {
        <div class="dial" data-testid=testid>
            <svg viewBox="0 0 100 88" role="img" aria-label=label>
                <path d=track class="dial-track" />
                <path
                    d=move || arc(value.get().unwrap_or(0.0) as f64 / 100.0)
                    class=move || format!("dial-value {}", level_class(value.get().unwrap_or(0.0)))
                    style:display=move || if value.get().is_some() { "" } else { "none" }
                />
                <text x="50" y="54" class="dial-text">
                    {move || value.get().map(|v| format!("{v:.0}%")).unwrap_or_else(|| "—".into())}
                </text>
            </svg>
            <div class="dial-label">{label}</div>
        </div>
    }
}

/// A labelled horizontal meter with a caption (e.g. `3.1 / 23.4 GiB`).
#[component]
pub fn Meter(
    label: &'static str,
    percent: Signal<Option<f32>>,
    caption: Signal<String>,
    #[prop(into)] testid: String,
) -> impl IntoView {
    view! {
        <div class="meter" data-testid=testid>
            <div class="meter-head">
                <span class="meter-label">{label}</span>
                <span class="meter-caption mono">{move || caption.get()}</span>
            </div>
            <div class="meter-track">
                <div
                    class=move || format!("meter-fill {}", level_class(percent.get().unwrap_or(0.0)))
                    style:width=move || format!("{:.1}%", percent.get().unwrap_or(0.0).clamp(0.0, 100.0))
                ></div>
            </div>
        </div>
    }
}
