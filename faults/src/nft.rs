//! nftables from inside the harness: libnftables (the library behind the `nft` command) loaded
//! at run time and driven from a thread that lives in the target network namespace, so a rule
//! change costs one netlink transaction (a fraction of a millisecond) instead of starting a
//! process (8 to 30 ms on a busy two-core machine).
//!
//! The library takes the same text as `nft -f`, so rulesets stay readable and the journal,
//! tests and docs show the exact rules applied. When the library cannot be loaded the caller
//! falls back to the `nft` command.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::process::{enter_netns, NetnsChoice};

mod setelem;
pub use setelem::{Family, SetContent};

/// Sonames tried in order (Debian's libnftables1 ships `.so.1`).
const LIBRARY: &[&str] = &["libnftables.so.1", "libnftables.so"];

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("cannot load libnftables ({0})")]
    Load(String),
    #[error("cannot enter the network namespace: {0}")]
    Namespace(std::io::Error),
    #[error("libnftables could not make a context")]
    Context,
    #[error("nft rejected the ruleset: {0}")]
    Rejected(String),
    #[error("the nftables thread is gone")]
    Gone,
}

type Reply = mpsc::Sender<Result<String, NftError>>;

/// Work for the nftables thread.
enum Job {
    /// nft text, through libnftables.
    Text(String),
    /// Set contents, straight over netlink.
    Sets(Vec<SetContent>),
}

/// A libnftables context, and a netfilter netlink socket for set changes, on their own
/// thread in one network namespace.
pub struct Nft {
    tx: Option<mpsc::Sender<(Job, Reply)>>,
    thread: Option<JoinHandle<()>>,
}

/// The C entry points used (see `libnftables(3)`).
struct Api {
    _lib: libloading::Library,
    ctx_new: unsafe extern "C" fn(c_uint) -> *mut c_void,
    ctx_free: unsafe extern "C" fn(*mut c_void),
    buffer_output: unsafe extern "C" fn(*mut c_void) -> c_int,
    buffer_error: unsafe extern "C" fn(*mut c_void) -> c_int,
    output: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    error: unsafe extern "C" fn(*mut c_void) -> *const c_char,
    run: unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int,
}

impl Api {
    fn load() -> Result<Api, NftError> {
        let mut last = String::from("no candidate");
        for name in LIBRARY {
            // SAFETY: loading libnftables runs no initialisers with preconditions of ours.
            match unsafe { libloading::Library::new(name) } {
                Ok(lib) => return Api::bind(lib),
                Err(e) => last = format!("{name}: {e}"),
            }
        }
        Err(NftError::Load(last))
    }

    fn bind(lib: libloading::Library) -> Result<Api, NftError> {
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the types match the declarations in <nftables/libnftables.h>.
                *unsafe { lib.get($name) }
                    .map_err(|e| NftError::Load(format!("{}: {e}", stringify!($name))))?
            };
        }
        Ok(Api {
            ctx_new: sym!(b"nft_ctx_new\0"),
            ctx_free: sym!(b"nft_ctx_free\0"),
            buffer_output: sym!(b"nft_ctx_buffer_output\0"),
            buffer_error: sym!(b"nft_ctx_buffer_error\0"),
            output: sym!(b"nft_ctx_get_output_buffer\0"),
            error: sym!(b"nft_ctx_get_error_buffer\0"),
            run: sym!(b"nft_run_cmd_from_buffer\0"),
            _lib: lib,
        })
    }
}

/// A context, used only on the thread that made it.
struct Ctx<'a> {
    api: &'a Api,
    ptr: *mut c_void,
}

impl<'a> Ctx<'a> {
    fn new(api: &'a Api) -> Result<Ctx<'a>, NftError> {
        // SAFETY: 0 is NFT_CTX_DEFAULT; a null return is handled.
        let ptr = unsafe { (api.ctx_new)(0) };
        if ptr.is_null() {
            return Err(NftError::Context);
        }
        let ctx = Ctx { api, ptr };
        // SAFETY: `ptr` is a live context.
        unsafe {
            (api.buffer_output)(ptr);
            (api.buffer_error)(ptr);
        }
        Ok(ctx)
    }

    fn run(&self, text: &str) -> Result<String, NftError> {
        let c = CString::new(text)
            .map_err(|_| NftError::Rejected("a NUL byte in the ruleset".into()))?;
        // SAFETY: live context, NUL-terminated input; the buffers returned stay valid until the
        // next command on this context, and are copied before that.
        unsafe {
            let rc = (self.api.run)(self.ptr, c.as_ptr());
            let take = |p: *const c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let out = take((self.api.output)(self.ptr));
            let err = take((self.api.error)(self.ptr));
            if rc == 0 {
                Ok(out)
            } else {
                Err(NftError::Rejected(err.trim().to_string()))
            }
        }
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        // SAFETY: the context was made by `ctx_new` and is freed once.
        unsafe { (self.api.ctx_free)(self.ptr) }
    }
}

impl Nft {
    /// A context in the namespace of `ns` (an open `/proc/PID/ns/net`), or in the harness's own
    /// with `None`. Fails if the library cannot be loaded or the namespace entered.
    pub fn open(ns: Option<Arc<File>>) -> Result<Nft, NftError> {
        let (tx, rx) = mpsc::channel::<(Job, Reply)>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("nftables".into())
            .spawn(move || {
                let setup = || -> Result<Api, NftError> {
                    if let Some(f) = &ns {
                        enter_netns(NetnsChoice::Join(f.as_raw_fd()))
                            .map_err(NftError::Namespace)?;
                    }
                    Api::load()
                };
                let api = match setup() {
                    Ok(api) => api,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let ctx = match Ctx::new(&api) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut sets: Option<setelem::SetSocket> = None;
                for (job, reply) in rx {
                    let result = match job {
                        Job::Text(text) => ctx.run(&text),
                        Job::Sets(contents) => {
                            let sock = match sets.take() {
                                Some(s) => Ok(s),
                                None => setelem::SetSocket::open(),
                            };
                            match sock {
                                Ok(mut sock) => {
                                    let r = sock.replace(&contents).map(|()| String::new());
                                    sets = Some(sock);
                                    r.map_err(NftError::Rejected)
                                }
                                Err(e) => Err(NftError::Rejected(format!("netlink socket: {e}"))),
                            }
                        }
                    };
                    let _ = reply.send(result);
                }
            })
            .map_err(|e| NftError::Load(format!("cannot start its thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Nft {
                tx: Some(tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(NftError::Gone)
            }
        }
    }

    /// Run a ruleset or command, as `nft -f -` would; returns what it printed.
    pub fn run(&self, text: &str) -> Result<String, NftError> {
        self.ask(Job::Text(text.to_string()))
    }

    /// Make each set hold exactly the keys given, in one netlink transaction (all or
    /// nothing), without libnftables's cache refresh.
    pub fn replace_sets(&self, contents: Vec<SetContent>) -> Result<(), NftError> {
        self.ask(Job::Sets(contents)).map(|_| ())
    }

    fn ask(&self, job: Job) -> Result<String, NftError> {
        let (reply, answer) = mpsc::channel();
        self.tx
            .as_ref()
            .ok_or(NftError::Gone)?
            .send((job, reply))
            .map_err(|_| NftError::Gone)?;
        answer.recv().map_err(|_| NftError::Gone)?
    }
}

impl Drop for Nft {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Root with nftables: the library applies and lists rules in a private namespace, and
    /// reports a syntax error with nft's own message.
    #[test]
    fn applies_rules_in_a_namespace_of_its_own() {
        if let Err(e) = crate::netns::supported() {
            eprintln!("skipped: {e}");
            return;
        }
        /// Killed and reaped however the test ends.
        struct Holder(std::process::Child);
        impl Drop for Holder {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let holder = Holder(
            std::process::Command::new("unshare")
                .args(["-n", "sleep", "30"])
                .spawn()
                .expect("unshare"),
        );
        // Wait for the child to be in its own namespace.
        let mine = std::fs::read_link("/proc/self/ns/net").unwrap();
        let path = format!("/proc/{}/ns/net", holder.0.id());
        let mut tries = 0;
        while std::fs::read_link(&path).ok().as_ref() == Some(&mine) && tries < 500 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            tries += 1;
        }
        let ns = Arc::new(File::open(&path).unwrap());
        let nft = match Nft::open(Some(ns)) {
            Ok(n) => n,
            Err(NftError::Load(e)) => {
                eprintln!("skipped: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        nft.run(
            "table inet fltest {\n chain c {\n  type filter hook input priority 0;\n  ip saddr 10.1.2.3 drop\n }\n}\n",
        )
        .unwrap();
        let listed = nft.run("list table inet fltest").unwrap();
        assert!(listed.contains("ip saddr 10.1.2.3 drop"), "{listed}");
        let err = nft.run("this is not nft").unwrap_err().to_string();
        assert!(err.contains("syntax error"), "{err}");
        // Set contents over netlink: replaced, replaced again, emptied; a missing set fails
        // the whole transaction and is named.
        nft.run("add set inet fltest pairs { type ipv4_addr . ipv4_addr; }\n")
            .unwrap();
        let pairs = |keys: &[[u8; 8]]| {
            vec![SetContent {
                family: Family::Inet,
                table: "fltest".into(),
                set: "pairs".into(),
                keys: keys.iter().map(|k| k.to_vec()).collect(),
            }]
        };
        let list = || nft.run("list set inet fltest pairs").unwrap();
        nft.replace_sets(pairs(&[
            [10, 0, 0, 1, 10, 0, 0, 2],
            [10, 0, 0, 2, 10, 0, 0, 1],
        ]))
        .unwrap();
        let l = list();
        assert!(
            l.contains("10.0.0.1 . 10.0.0.2") && l.contains("10.0.0.2 . 10.0.0.1"),
            "{l}"
        );
        nft.replace_sets(pairs(&[[10, 0, 0, 3, 10, 0, 0, 1]]))
            .unwrap();
        let l = list();
        assert!(
            l.contains("10.0.0.3 . 10.0.0.1") && !l.contains("10.0.0.1 . 10.0.0.2"),
            "{l}"
        );
        nft.replace_sets(pairs(&[])).unwrap();
        assert!(!list().contains("10.0.0."), "{}", list());
        let mut bad = pairs(&[[10, 0, 0, 9, 10, 0, 0, 8]]);
        bad.push(SetContent {
            family: Family::Inet,
            table: "fltest".into(),
            set: "missing".into(),
            keys: vec![],
        });
        let err = nft.replace_sets(bad).unwrap_err().to_string();
        assert!(err.contains("flush set inet fltest missing"), "{err}");
        assert!(!list().contains("10.0.0.9"), "all or nothing: {}", list());
        // The table is in the holder's namespace, not the harness's.
        let here = std::process::Command::new("nft")
            .args(["list", "tables"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(!here.contains("fltest"), "{here}");
    }
}
