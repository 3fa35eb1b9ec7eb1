//! The shell of a core's [`Core::step`]: each input to its handler, peer messages only from
//! the other members of the static cluster.

use faultline_protocol::Request;

use crate::cluster::Cluster;
use crate::driver::{ClientToken, Core, Input, Millis, Outbox};

/// A core's handler of client requests (a [`ForwardingCore`]'s is its forwarding path).
///
/// [`ForwardingCore`]: crate::forward::ForwardingCore
pub trait ClientHandler: Core {
    /// A client request; answer it now or later with `token`.
    fn on_client(
        &mut self,
        now: Millis,
        token: ClientToken,
        request: Request,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    );
}

/// A core's handlers of peer messages and ticks, its start, and who it is among whom;
/// [`Handlers::dispatch`] is its `step`.
pub trait Handlers: Core {
    /// This node among its static cluster.
    fn cluster(&self) -> &Cluster;

    /// Whether the core has started, for a core that does something at its first input
    /// ([`Handlers::start`]); `None` (the default): it does nothing then.
    fn started(&mut self) -> Option<&mut bool> {
        None
    }

    /// The core's first input is about to be handled (only if it has [`Handlers::started`]).
    fn start(&mut self, _now: Millis, _out: &mut Outbox<Self::Msg, Self::Persist>) {}

    /// A message from `from`, another member of the cluster.
    fn on_peer(
        &mut self,
        now: Millis,
        from: String,
        msg: Self::Msg,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    );

    /// Time passed: check timeouts.
    fn on_tick(&mut self, now: Millis, out: &mut Outbox<Self::Msg, Self::Persist>);

    /// Start at the first input, then hand `input` to its handler; a message from this node
    /// itself or from a node outside the cluster is dropped.
    fn dispatch(
        &mut self,
        now: Millis,
        input: Input<Self::Msg>,
        out: &mut Outbox<Self::Msg, Self::Persist>,
    ) where
        Self: ClientHandler,
    {
        if let Some(started) = self.started() {
            if !std::mem::replace(started, true) {
                self.start(now, out);
            }
        }
        match input {
            Input::Client { token, request } => self.on_client(now, token, request, out),
            Input::Peer { from, msg } => {
                if self.cluster().is_peer(&from) {
                    self.on_peer(now, from, msg, out);
                }
            }
            Input::Tick => self.on_tick(now, out),
        }
    }

    /// Every node of the cluster but this one, in order.
    fn peers(&self) -> Vec<String> {
        self.cluster().peers()
    }
}
