//! Text made safe inside XML and HTML (element text and quoted attribute
//! values): libvirt's domain XML, the printable reports, the cockpit's
//! loading shell.

/// `s` with `& < > " '` written as entities (`&apos;` is XML's and HTML5's).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
