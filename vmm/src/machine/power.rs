//! The power button: an EPOW "system shutdown, normal" event the guest fetches with
//! `check-exception` after the `/event-sources/epow-events` interrupt; Linux's
//! `handle_system_shutdown()` then runs `orderly_poweroff()` (the init system shuts down, the
//! kernel calls RTAS `power-off`, and the VMM exits 0). QEMU's `system_powerdown` on pseries.

use super::{Machine, OpError};
use firmware::rtas::events::{power_button_log, QueueError};
use firmware::rtas::EventClass;
use log::info;

impl Machine {
    /// Presses the power button. Refused unless a kernel runs, and when too many events are
    /// already waiting for the guest (a guest that never fetches them).
    pub(crate) fn power_button(&mut self) -> Result<(), OpError> {
        super::nmi::refuse_unless_running(self.state)?;
        let (created, plid) = self.partition.event_log_stamp();
        self.partition
            .queue_event(EventClass::Epow, power_button_log(created, plid))
            .map_err(|e| match e {
                QueueError::Full(_) => OpError::Busy("the guest has not fetched earlier events"),
                QueueError::BadLength(_) => OpError::Failed(e.to_string()),
            })?;
        info!("power button pressed: EPOW shutdown event {plid} queued for the guest");
        crate::event_monitor::emit(
            "power-button",
            serde_json::json!({ "event": plid.to_string() }),
        );
        Ok(())
    }
}
