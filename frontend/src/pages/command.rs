//! COMMAND: mission control. Its fleet and operations panels fill in as
//! platforms, flows and repositories arrive; until then they say so.

use leptos::prelude::*;

use crate::live::use_live;
use crate::nav;
use crate::pages::planned::PageHeader;

#[component]
pub fn CommandPage() -> impl IntoView {
    let d = nav::for_path("/command").expect("COMMAND is in the navigation table");
    let live = use_live();
    view! {
        <section class="page" data-testid="page-command">
            <PageHeader label=d.label purpose=d.purpose />
            <div class="panel-grid">
                <EmptyPanel title="FLEET STATUS" text="No platform is connected, so no machine is protected yet." />
                <EmptyPanel title="OPERATIONS STATUS" text="No flow exists yet: nothing is running, queued or paused." />
                <EmptyPanel title="PLATFORM DISTRIBUTION" text="Appears once machines are discovered on a platform." />
                <EmptyPanel title="STORAGE EFFICIENCY" text="Deduplication and compression ratios appear after the first backup." />
            </div>
            <div class="card">
                <h2>"SERVER"</h2>
                <dl class="facts wide">
                    <dt>"Link"</dt>
                    <dd>{move || live.state.get().label()}</dd>
                    <dt>"Version"</dt>
                    <dd class="mono">{move || live.version.get().unwrap_or_else(|| "—".into())}</dd>
                    <dt>"CPU"</dt>
                    <dd class="mono">{move || live.health.get().map(|h| format!("{:.0}% of {} cores", h.cpu_percent, h.cpu_cores)).unwrap_or_else(|| "—".into())}</dd>
                </dl>
            </div>
        </section>
    }
}

#[component]
fn EmptyPanel(title: &'static str, text: &'static str) -> impl IntoView {
    view! {
        <div class="card empty">
            <h2>{title}</h2>
            <p class="muted">{text}</p>
        </div>
    }
}
