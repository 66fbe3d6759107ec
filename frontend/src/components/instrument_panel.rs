//! Left instrument panel: live gauges of this server, all from heartbeats.

use leptos::prelude::*;

use crate::components::instruments::{Dial, Meter};
use crate::format::{format_bytes, format_duration};
use crate::live::use_live;

#[component]
pub fn InstrumentPanel() -> impl IntoView {
    let live = use_live();
    let health = live.health;
    let cpu = Signal::derive(move || health.get().map(|h| h.cpu_percent));
    let mem_pct = Signal::derive(move || health.get().map(|h| h.memory_percent()));
    let mem_caption = Signal::derive(move || {
        health
            .get()
            .map(|h| format!("{} / {}", format_bytes(h.memory_used_bytes), format_bytes(h.memory_total_bytes)))
            .unwrap_or_else(|| "—".into())
    });
    let disk_pct = Signal::derive(move || health.get().map(|h| h.data_dir_used_percent()));
    let disk_caption = Signal::derive(move || {
        health
            .get()
            .map(|h| format!("{} free of {}", format_bytes(h.data_dir_free_bytes), format_bytes(h.data_dir_total_bytes)))
            .unwrap_or_else(|| "—".into())
    });
    view! {
        <div class="panel-title">"INSTRUMENTS"</div>
        <section class="instrument-group">
            <h3>"This server"</h3>
            <div class="dial-row">
                <Dial label="CPU" value=cpu testid="dial-cpu" />
                <Dial label="MEMORY" value=mem_pct testid="dial-mem" />
            </div>
            <Meter label="Memory" percent=mem_pct caption=mem_caption testid="meter-mem" />
            <Meter label="Data dir" percent=disk_pct caption=disk_caption testid="meter-disk" />
            <dl class="facts">
                <dt>"Cores"</dt>
                <dd class="mono">{move || health.get().map(|h| h.cpu_cores.to_string()).unwrap_or_else(|| "—".into())}</dd>
                <dt>"Server memory"</dt>
                <dd class="mono">{move || health.get().map(|h| format_bytes(h.process_rss_bytes)).unwrap_or_else(|| "—".into())}</dd>
                <dt>"Uptime"</dt>
                <dd class="mono">{move || live.uptime_seconds.get().map(format_duration).unwrap_or_else(|| "—".into())}</dd>
                <dt>"Catalog"</dt>
                <dd data-testid="catalog-state">
                    {move || match live.catalog_ok.get() {
                        Some(true) => view! { <span class="ok">"answering"</span> }.into_any(),
                        Some(false) => view! { <span class="bad">"not answering"</span> }.into_any(),
                        None => view! { <span class="muted">"—"</span> }.into_any(),
                    }}
                </dd>
            </dl>
        </section>
    }
}
