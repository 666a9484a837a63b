//! Consumption by offset on behalf of a group (pull): the reader names the
//! queue and offset, the group keeps committed offsets (in the core), and
//! this feature remembers how far each group was handed messages so that
//! messages handed out again are counted as redeliveries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_common::QueueKey;
use strata_common::usage::Counter;

use crate::core::Core;
use crate::error::Result;
use crate::types::{ReadLimits, ReadResult};

/// (tenant, group, queue) → end of the offsets handed to that group.
type DeliveredMarks = HashMap<(String, String, QueueKey), u64>;

/// Reads by offset for consumer groups.
#[derive(Debug)]
pub(crate) struct Pull {
    core: Arc<Core>,
    /// How far each (tenant, group, queue) has been handed messages on
    /// this node since it started.
    delivered: Mutex<DeliveredMarks>,
}

impl Pull {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self {
            core,
            delivered: Mutex::new(DeliveredMarks::new()),
        }
    }

    /// [`Core::read`] on behalf of consumer `group` (which must exist):
    /// messages the group was given before are counted as redeliveries.
    ///
    /// "Given before" means below the end of what this node has handed the
    /// group on that queue since it started, or below the group's committed
    /// offset (what it has consumed for good), whichever is further.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn read_for_group(
        &self,
        tenant: &str,
        group: &str,
        topic: &str,
        queue: u32,
        offset: u64,
        wait: Duration,
        limits: ReadLimits<'_>,
    ) -> Result<ReadResult> {
        let core = &self.core;
        core.require_group(tenant, group).await?;
        let key = core.topic(tenant, topic)?.queue(queue)?.key;
        let committed = core
            .catalog
            .get_offset(tenant, group, key.topic, queue)
            .await?
            .map_or(0, |c| c.offset);
        let result = core
            .read(tenant, topic, queue, offset, wait, limits)
            .await?;
        let again = {
            let mut delivered = self.delivered.lock().unwrap_or_else(|p| p.into_inner());
            let mark = delivered
                .entry((tenant.to_string(), group.to_string(), key))
                .or_default();
            *mark = (*mark).max(committed);
            let again = result.messages.iter().filter(|m| m.offset < *mark).count();
            *mark = (*mark).max(result.next_offset);
            again
        };
        core.meter.add(tenant, Counter::Redeliveries, again as u64);
        Ok(result)
    }

    /// Forgets what a deleted group was handed.
    pub(crate) fn forget_group(&self, tenant: &str, group: &str) {
        self.delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(t, g, _), _| !(t == tenant && g == group));
    }
}
