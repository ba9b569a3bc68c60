//! An operator's on/off for one connector (`POST
//! /v1/channels/{channel}/connectors/{name}/stop` and `start`): off, the
//! connector takes no message and holds no connection until it is on again.
//! It is not persisted: a restart starts every configured connector.

use tokio::sync::watch;

pub struct Switch(watch::Sender<bool>);

impl Default for Switch {
    fn default() -> Self {
        Self(watch::channel(true).0)
    }
}

impl Switch {
    pub fn is_on(&self) -> bool {
        *self.0.borrow()
    }

    /// Turns it on or off; whether that changed it.
    pub fn set(&self, on: bool) -> bool {
        self.0
            .send_if_modified(|state| std::mem::replace(state, on) != on)
    }

    /// Resolves once it is on.
    pub async fn until_on(&self) {
        let _ = self.0.subscribe().wait_for(|on| *on).await;
    }

    /// Resolves once it is off.
    pub async fn until_off(&self) {
        let _ = self.0.subscribe().wait_for(|on| !*on).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_wake_when_it_is_turned() {
        let switch = std::sync::Arc::new(Switch::default());
        assert!(switch.is_on());
        assert!(!switch.set(true), "already on");
        let off = tokio::spawn({
            let switch = switch.clone();
            async move { switch.until_off().await }
        });
        assert!(switch.set(false));
        off.await.expect("woken");
        let on = tokio::spawn({
            let switch = switch.clone();
            async move { switch.until_on().await }
        });
        assert!(switch.set(true));
        on.await.expect("woken");
        assert!(switch.is_on());
    }
}
