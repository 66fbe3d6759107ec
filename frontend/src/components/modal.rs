//! A modal dialog over a dimmed backdrop; Escape or the backdrop closes it.

use leptos::prelude::*;

#[component]
pub fn Modal(
    open: RwSignal<bool>,
    title: &'static str,
    #[prop(into)] testid: String,
    children: ChildrenFn,
) -> impl IntoView {
    let children = StoredValue::new(children);
    view! {
        <Show when=move || open.get()>
            <div class="modal-backdrop" on:click=move |_| open.set(false)>
                <div
                    class="modal"
                    role="dialog"
                    aria-modal="true"
                    aria-label=title
                    data-testid=testid.clone()
                    on:click=|ev| ev.stop_propagation()
                    on:keydown=move |ev| if ev.key() == "Escape" { open.set(false) }
                >
                    <header class="modal-head">
                        <h2>{title}</h2>
                        <button class="icon-button" aria-label="Close" on:click=move |_| open.set(false)>"✕"</button>
                    </header>
                    <div class="modal-body">{children.read_value()()}</div>
                </div>
            </div>
        </Show>
    }
}
