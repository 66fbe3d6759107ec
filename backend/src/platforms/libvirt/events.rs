//! Lifecycle events from a libvirt host: a domain started, paused, resumed,
//! stopped or crashed, reported within the event loop's latency (well under
//! a second) without a rediscovery. One process-wide event loop thread runs
//! libvirt's default implementation; each watched host has a thread that
//! keeps a connection with a lifecycle callback registered, and reconnects
//! when the daemon goes away and comes back.

use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use shared_types::platform::PowerState;
use virt::sys;

/// A domain's power changed on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerEvent {
    /// The domain's UUID (its platform id).
    pub vm_id: String,
    pub power: PowerState,
}

type Sink = Box<dyn Fn(PowerEvent) + Send + Sync>;

/// Starts libvirt's event loop (once per process). Connections opened after
/// this can deliver events; it is harmless for the others.
pub fn ensure_event_loop() {
    static START: Once = Once::new();
    START.call_once(|| {
        if virt::event::event_register_default_impl().is_err() {
            tracing::warn!("libvirt's event loop could not be registered: power changes are seen at the next discovery");
            return;
        }
        let spawned = std::thread::Builder::new().name("libvirt-events".into()).spawn(|| loop {
            if virt::event::event_run_default_impl().is_err() {
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "starting libvirt's event loop thread");
        }
    });
}

/// The power state a lifecycle event leaves a domain in (`None`: an event
/// that does not change it, such as a definition or a shutdown request).
fn power_after(event: c_int) -> Option<PowerState> {
    match event as u32 {
        sys::VIR_DOMAIN_EVENT_STARTED | sys::VIR_DOMAIN_EVENT_RESUMED => Some(PowerState::Running),
        sys::VIR_DOMAIN_EVENT_SUSPENDED | sys::VIR_DOMAIN_EVENT_PMSUSPENDED => Some(PowerState::Suspended),
        sys::VIR_DOMAIN_EVENT_STOPPED | sys::VIR_DOMAIN_EVENT_CRASHED => Some(PowerState::Stopped),
        _ => None,
    }
}

unsafe extern "C" fn on_lifecycle(_conn: sys::virConnectPtr, dom: sys::virDomainPtr, event: c_int, _detail: c_int, opaque: *mut c_void) -> c_int {
    let Some(power) = power_after(event) else { return 0 };
    let mut buf = [0 as std::ffi::c_char; sys::VIR_UUID_STRING_BUFLEN as usize];
    if sys::virDomainGetUUIDString(dom, buf.as_mut_ptr()) < 0 {
        return 0;
    }
    let vm_id = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
    let sink = &*(opaque as *const Sink);
    sink(PowerEvent { vm_id, power });
    0
}

unsafe extern "C" fn free_sink(opaque: *mut c_void) {
    drop(Box::from_raw(opaque as *mut Sink));
}

/// Watches a host until dropped.
pub struct Watch {
    stop: Arc<AtomicBool>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Calls `sink` for every power change of a domain on the host at `uri`,
/// reconnecting while the host is unreachable, until the [`Watch`] is dropped.
pub fn watch(uri: &str, sink: impl Fn(PowerEvent) + Send + Sync + 'static) -> Watch {
    ensure_event_loop();
    let stop = Arc::new(AtomicBool::new(false));
    let (uri, halt) = (uri.to_string(), Arc::clone(&stop));
    let sink: Arc<dyn Fn(PowerEvent) + Send + Sync> = Arc::new(sink);
    let spawned = std::thread::Builder::new().name("libvirt-watch".into()).spawn(move || {
        while !halt.load(Ordering::Relaxed) {
            match super::open(&uri) {
                Ok(conn) => {
                    let forward = Arc::clone(&sink);
                    let boxed: Box<Sink> = Box::new(Box::new(move |e| forward(e)));
                    let opaque = Box::into_raw(boxed) as *mut c_void;
                    // SAFETY: the callback has the lifecycle signature libvirt
                    // calls for VIR_DOMAIN_EVENT_ID_LIFECYCLE; `opaque` lives
                    // until libvirt calls `free_sink` at deregistration.
                    let id = unsafe {
                        let cb: unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, c_int, c_int, *mut c_void) -> c_int = on_lifecycle;
                        sys::virConnectDomainEventRegisterAny(
                            conn.as_ptr(),
                            std::ptr::null_mut(),
                            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
                            Some(std::mem::transmute::<_, unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void)>(cb)),
                            opaque,
                            Some(free_sink),
                        )
                    };
                    if id < 0 {
                        unsafe { free_sink(opaque) };
                        tracing::warn!(%uri, "registering for lifecycle events failed");
                    } else {
                        // What changed while nobody listened (first watch, or
                        // the daemon was away): every domain's state now.
                        for dom in conn.list_all_domains(0).unwrap_or_default() {
                            if let (Ok(vm_id), Ok(power)) = (dom.uuid_string(), super::power_of(&dom)) {
                                sink(PowerEvent { vm_id, power });
                            }
                        }
                        while !halt.load(Ordering::Relaxed) && conn.is_alive().unwrap_or(false) {
                            std::thread::sleep(Duration::from_millis(250));
                        }
                        unsafe {
                            sys::virConnectDomainEventDeregisterAny(conn.as_ptr(), id);
                        }
                    }
                    drop(conn);
                }
                Err(_) => {}
            }
            // Unreachable or gone: try again shortly.
            for _ in 0..8 {
                if halt.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "starting a libvirt watch thread");
    }
    Watch { stop }
}
