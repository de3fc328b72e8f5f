//! A progress bar (indicatif) for each blob over 1 MiB, shared by the transfer examples.

use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use wharf::client::Progress;

/// One bar per blob larger than 1 MiB.
pub(crate) fn bars() -> Progress {
    let bar: Arc<Mutex<Option<(String, ProgressBar)>>> = Arc::new(Mutex::new(None));
    Progress::new(move |digest, done, total| {
        let Some(total) = total.filter(|t| *t > 1024 * 1024) else { return };
        let mut current = bar.lock().expect("lock");
        if current.as_ref().is_none_or(|(d, _)| d != digest.as_str()) {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{msg} {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
                    .expect("template"),
            );
            b.set_message(digest.encoded()[..12].to_owned());
            *current = Some((digest.to_string(), b));
        }
        if let Some((_, b)) = current.as_ref() {
            b.set_position(done);
            if done >= total {
                b.finish();
            }
        }
    })
}
