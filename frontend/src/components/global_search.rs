//! The top bar's global search: as the operator types, the server's
//! `GET /api/v1/search` (VMs, flows, groups, platforms, repositories,
//! restore points, jobs) merged with the cockpit's own pages
//! ([`nav::page_hits`]), ranked alike ([`sort_hits`]). The server is asked
//! 150 ms after the last keystroke, and an answer to an older text is
//! dropped; meanwhile the last answer, narrowed to the longer text, stays. Up/down choose, Enter opens (the hit's route), Escape leaves;
//! `/` anywhere but in a text field puts the cursor in the box.
//!
//! Where the context bar is narrow (tablets, phones) the box folds into a
//! search button; the button or `/` opens it over the whole bar, and
//! leaving it (Escape, a hit opened, the focus gone from an empty box)
//! folds it again.

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use shared_types::search::{check_query, match_rank, sort_hits, SearchHit};
use wasm_bindgen::JsCast;

use crate::api;
use crate::nav;

/// Quiet time after a keystroke before the server is asked.
const DEBOUNCE_MS: u32 = 150;
/// Hits shown.
const SHOWN: usize = 20;

/// What the server said for one search text.
#[derive(Debug, Clone, PartialEq, Default)]
struct Answer {
    text: String,
    hits: Vec<SearchHit>,
    error: Option<String>,
}

#[component]
pub fn GlobalSearch() -> impl IntoView {
    let text = RwSignal::new(String::new());
    let answer = RwSignal::new(Answer::default());
    // Bumped at every keystroke: a reply for an older one is stale.
    let generation = StoredValue::new(0u64);
    let active = RwSignal::new(0usize);
    let focused = RwSignal::new(false);
    // Unfolded over the context bar (narrow screens only: CSS).
    let unfolded = RwSignal::new(false);
    let input = NodeRef::<leptos::html::Input>::new();
    let search_box = NodeRef::<leptos::html::Div>::new();
    // Unfolds and puts the cursor in the box at once (the class is set on
    // the element now, not at the next render, so keys typed right after
    // `/` land in the box).
    let focus_box = move || {
        if let Some(div) = search_box.get_untracked() {
            let _ = div.class_list().add_1("unfolded");
        }
        unfolded.set(true);
        if let Some(el) = input.get_untracked() {
            let _ = el.focus();
            el.select();
        }
    };

    let wanted = move || check_query(&text.get()).ok().map(str::to_owned);
    let waiting = move || wanted().is_some_and(|q| answer.with(|a| a.text != q));
    let hits = Memo::new(move |_| {
        let Some(q) = wanted() else { return Vec::new() };
        let mut all = nav::page_hits(&q);
        answer.with(|a| {
            if a.text == q {
                all.extend(a.hits.iter().cloned());
            } else if !a.text.is_empty() && q.to_lowercase().contains(&a.text.to_lowercase()) {
                // Until the answer for a longer text arrives, the last one
                // narrowed to it: the list does not blink at every key.
                all.extend(a.hits.iter().filter_map(|h| match_rank(&q, &h.title).map(|rank| SearchHit { rank, ..h.clone() })));
            }
        });
        sort_hits(&mut all);
        all.truncate(SHOWN);
        all
    });

    let ask = move |value: String| {
        text.set(value.clone());
        active.set(0);
        let g = generation.get_value().wrapping_add(1);
        generation.set_value(g);
        let Ok(q) = check_query(&value).map(str::to_owned) else { return };
        spawn_local(async move {
            TimeoutFuture::new(DEBOUNCE_MS).await;
            if generation.try_get_value() != Some(g) {
                return;
            }
            let reply = api::search(&q, SHOWN).await;
            if generation.try_get_value() != Some(g) {
                return;
            }
            let answer_now = match reply {
                Ok(r) => Answer { text: q, hits: r.hits, error: None },
                Err(e) => Answer { text: q, hits: Vec::new(), error: Some(e.message) },
            };
            answer.try_set(answer_now);
        });
    };
    let leave = move || {
        unfolded.set(false);
        text.set(String::new());
        answer.set(Answer::default());
        generation.set_value(generation.get_value().wrapping_add(1));
        if let Some(el) = input.get_untracked() {
            let _ = el.blur();
        }
    };
    let navigate = use_navigate();
    // A Callback is Copy, so every closure below can hold it.
    let open = Callback::new(move |route: String| {
        leave();
        navigate(&route, Default::default());
    });

    // `/` focuses the box, unless the operator is typing somewhere.
    let handle = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() != "/" || ev.ctrl_key() || ev.meta_key() || ev.alt_key() || typing_in_a_field(&ev) {
            return;
        }
        ev.prevent_default();
        focus_box();
    });
    on_cleanup(move || handle.remove());

    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let n = hits.with_untracked(Vec::len);
        match ev.key().as_str() {
            "ArrowDown" if n > 0 => {
                ev.prevent_default();
                active.update(|i| *i = (*i + 1) % n);
            }
            "ArrowUp" if n > 0 => {
                ev.prevent_default();
                active.update(|i| *i = (*i + n - 1) % n);
            }
            "Enter" => {
                ev.prevent_default();
                let i = active.get_untracked().min(n.saturating_sub(1));
                if let Some(hit) = hits.with_untracked(|h| h.get(i).cloned()) {
                    open.run(hit.route);
                }
            }
            "Escape" => leave(),
            _ => {}
        }
    };
    let expanded = move || focused.get() && wanted().is_some();

    view! {
        <div class="search dropdown" class:unfolded=move || unfolded.get() node_ref=search_box data-testid="global-search-box">
            <button
                type="button"
                class="icon-button search-toggle"
                aria-label="Search"
                aria-keyshortcuts="/"
                title="Search (/)"
                data-testid="global-search-open"
                on:click=move |_| focus_box()
            >
                <svg class="search-icon" viewBox="0 0 16 16" aria-hidden="true">
                    <circle cx="7" cy="7" r="4.5" />
                    <path d="M10.4 10.4 14 14" />
                </svg>
            </button>
            <input
                node_ref=input
                type="search"
                placeholder="Search VMs, flows, jobs…"
                aria-label="Global search"
                role="combobox"
                aria-autocomplete="list"
                aria-controls="global-search-results"
                aria-expanded=move || expanded().to_string()
                aria-activedescendant=move || expanded().then(|| format!("search-hit-{}", active.get()))
                aria-keyshortcuts="/"
                autocomplete="off"
                spellcheck="false"
                data-testid="global-search"
                prop:value=move || text.get()
                on:input=move |ev| ask(event_target_value(&ev))
                on:keydown=on_key
                on:focus=move |_| focused.set(true)
                on:blur=move |_| {
                    focused.set(false);
                    if text.with_untracked(String::is_empty) {
                        unfolded.set(false);
                    }
                }
            />
            <Show when=move || text.with(String::is_empty)>
                <kbd class="search-key" aria-hidden="true">"/"</kbd>
            </Show>
            <Show when=expanded>
                <div class="dropdown-panel search-results" role="listbox" id="global-search-results" data-testid="search-results">
                    {move || {
                        let list = hits.get();
                        if list.is_empty() {
                            let note = if waiting() {
                                "Searching…".to_string()
                            } else {
                                answer.with(|a| a.error.clone()).unwrap_or_else(|| "Nothing matches.".into())
                            };
                            return view! { <p class="muted" data-testid="search-empty">{note}</p> }.into_any();
                        }
                        list.into_iter()
                            .enumerate()
                            .map(|(i, hit)| view! { <HitRow hit=hit index=i active=active open=open /> })
                            .collect_view()
                            .into_any()
                    }}
                    {move || answer.with(|a| a.error.clone()).filter(|_| !hits.with(Vec::is_empty)).map(|e| view! {
                        <p class="notice warning small" data-testid="search-error">{e}</p>
                    })}
                </div>
            </Show>
        </div>
    }
}

#[component]
fn HitRow(hit: SearchHit, index: usize, active: RwSignal<usize>, open: Callback<String>) -> impl IntoView {
    let route = hit.route.clone();
    view! {
        <div
            class="search-hit"
            class:active=move || active.get() == index
            role="option"
            id=format!("search-hit-{index}")
            aria-selected=move || (active.get() == index).to_string()
            data-testid="search-hit"
            data-kind=hit.kind.as_str()
            data-title=hit.title.clone()
            // Only a pointer that really moves chooses: one resting where
            // the list appears must not undo the arrow keys.
            on:mousemove=move |ev| {
                if ev.movement_x() != 0 || ev.movement_y() != 0 {
                    active.set(index);
                }
            }
            // mousedown, not click: the box keeps its focus until the route opens.
            on:mousedown=move |ev| {
                ev.prevent_default();
                open.run(route.clone());
            }
        >
            <span class=format!("kind-tag kind-{}", hit.kind.as_str())>{hit.kind.label()}</span>
            <span class="hit-text">
                <strong>{hit.title.clone()}</strong>
                <small>{hit.subtitle}</small>
            </span>
        </div>
    }
}

/// The key went to a text field (or an editable element): `/` is typed there.
fn typing_in_a_field(ev: &leptos::ev::KeyboardEvent) -> bool {
    let Some(el) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok()) else {
        return false;
    };
    matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT") || el.is_content_editable()
}
