//! The cockpit's navigation: the table of pages lives in
//! [`shared_types::pages`] (the server names pages from it too).

pub use shared_types::pages::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every page the router serves is found by global search (its label).
    #[test]
    fn every_routed_page_is_found_by_search() {
        let app = include_str!("app.rs");
        let routes: Vec<&str> = app.split("path!(\"").skip(1).filter_map(|rest| rest.split('"').next()).filter(|p| *p != "/").collect();
        assert!(routes.len() >= 16 && routes.contains(&"/alerts") && routes.contains(&"/systems/users"), "{routes:?}");
        let labels = DESTINATIONS.iter().map(|d| (d.path, d.label)).chain(SYSTEMS_TABS.iter().chain(OTHER_PAGES).map(|t| (t.path, t.label)));
        let labels: Vec<(&str, &str)> = labels.collect();
        for route in routes {
            let (_, label) = labels.iter().find(|(p, _)| *p == route).unwrap_or_else(|| panic!("{route} is in no page list"));
            assert!(page_hits(label).iter().any(|h| h.route == route), "searching '{label}' does not find {route}");
        }
    }
}
