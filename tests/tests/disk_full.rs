//! Issue 14 §2 (disk full and write errors) with real `dsdnd` processes: a storage node
//! whose data directory is a small tmpfs (node key, cookie, peers.dat, da-log.redb) is
//! filled to the brim while the coordinator keeps publishing. The node must show the
//! degraded store (status, `da state`, metric), claim and serve no height it has not
//! stored, and — once space returns (the tmpfs is grown) — recover by itself and catch up
//! with the network.
//!
//! Needs root (to mount the tmpfs); skipped with a message otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    chunk_events, da_log_lines, da_tip, log_matches, log_offset, metric, wait_da_equal, TestNet,
    WAIT,
};

const NODE: &str = "storage-2";

/// Size of the tmpfs: room for the key, the cookie, peers.dat and a young DA log.
const TMPFS_SIZE: &str = "16m";

/// Its size once space "returns".
const GROWN_SIZE: &str = "64m";

/// A tmpfs mounted for the test; unmounted (lazily, so even with the daemon still in it)
/// when dropped, failure or not.
struct Tmpfs {
    path: PathBuf,
    mounted: bool,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> anyhow::Result<Tmpfs> {
        std::fs::create_dir_all(path)?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "mount tmpfs on {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Tmpfs {
            path: path.to_owned(),
            mounted: true,
        })
    }

    /// Grows (or shrinks) the mounted tmpfs to `size`.
    fn resize(&self, size: &str) -> anyhow::Result<()> {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "remount {} to {size}: {}",
            self.path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn unmount(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
            self.mounted = false;
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        self.unmount();
    }
}

/// Mounts a [`TMPFS_SIZE`] tmpfs as node `name`'s data directory, its log file
/// (`dsdnd.log`) a symlink to `<net dir>/<name>.log` outside it, so that the log can be
/// written and read while the tmpfs is full.
fn data_dir_on_tmpfs(net: &TestNet, name: &str) -> anyhow::Result<Tmpfs> {
    let data = net.data_dir(name);
    let tmpfs = Tmpfs::mount(&data, TMPFS_SIZE)?;
    let log_file = net.dir().join(format!("{name}.log"));
    std::fs::File::create(&log_file)?;
    std::os::unix::fs::symlink(&log_file, data.join("dsdnd.log"))?;
    Ok(tmpfs)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Writes zeros to `path` until the file system refuses (ENOSPC), in shrinking chunks down
/// to one byte: afterwards not one more byte fits. Returns the bytes written.
fn fill_to_the_brim(path: &Path) -> anyhow::Result<u64> {
    let mut f = std::fs::File::create(path)?;
    let mut written = 0u64;
    let mut chunk = 1usize << 20;
    let zeros = vec![0u8; chunk];
    while chunk > 0 {
        match f.write(&zeros[..chunk]) {
            Ok(0) => chunk /= 2,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => chunk /= 2,
            Err(e) => return Err(e.into()),
        }
    }
    let _ = f.sync_all();
    Ok(written)
}

/// Coordinator + `storage-1` on ordinary disks, `storage-2` on a 16 MiB tmpfs. The tmpfs
/// is filled to the brim while the coordinator publishes: `storage-2` must report its
/// DA log degraded (status, `da state`, `storage_degraded{store="da_log"}`), stay at its
/// durable tip (height = durable height, `synced: false`, `da blobs` empty above it),
/// through its failed retries while the disk stays full (the error logged once), then,
/// after the tmpfs is grown to 64 MiB (the filler stays), clear the degraded state by
/// itself and reach the network's tip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_node_on_a_full_disk_degrades_and_recovers_when_space_returns(
) -> anyhow::Result<()> {
    if !is_root() {
        eprintln!("[disk-full] skipped: mounting a tmpfs needs root");
        return Ok(());
    }
    // Declared before the net: dropped (unmounted) after the daemons were killed.
    let mut tmpfs: Option<Tmpfs>;
    let mut net = TestNet::new("disk-full").await?;
    let cfg = net.da_config("coordinator", 40)?;
    let mut names = net.start_da_net(40, 1, &cfg).await?;
    let data = net.data_dir(NODE);
    tmpfs = Some(data_dir_on_tmpfs(&net, NODE)?);
    net.spawn(NODE, NodeMode::Storage, 42, &cfg).await?;
    net.wait_registered(&[NODE]).await?;
    names.push(NODE.to_owned());
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, 8000);
    // Big blobs (256 events, the batch limit): the full disk is hit soon.
    let mut events = events.chunks(256);
    let coordinator = net
        .node("coordinator")
        .client_with_timeout(Duration::from_secs(30));
    let node = net.node(NODE);

    // Some blobs everywhere first.
    for part in events.by_ref().take(3) {
        coordinator.da_publish(part).await?;
    }
    let tip = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &tip, WAIT).await?;
    anyhow::ensure!(
        metric(node, "storage_degraded", &[("store", "da_log")]).await == 0.0,
        "degraded before the disk filled"
    );

    // Fill the tmpfs, then publish until the node is seen degraded. redb may still commit
    // into pages its file already holds (a retry can succeed on a "full" disk and the next
    // append fail again), so each look is checked as a whole: it counts only if the node
    // is degraded before and after it, at the same durable height.
    let offset = log_offset(node);
    let filler = data.join("filler");
    let filled = fill_to_the_brim(&filler)?;
    eprintln!("[disk-full] {NODE}'s tmpfs filled with {filled} bytes at {tip}");
    let start = Instant::now();
    let mut looks = 0;
    let (seen, network_tip) = loop {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(25),
            "{NODE} never showed a consistent degraded state on a full disk ({looks} looks)\n{}",
            da_log_lines(node, 30)
        );
        let Some(part) = events.next() else {
            anyhow::bail!("ran out of events before {NODE} degraded");
        };
        coordinator.da_publish(part).await?;
        let network_tip = da_tip(net.node("coordinator")).await?;
        let status = node.client().status().await?;
        let before = node.client().da_state().await?;
        let Some(d) = &before.degraded else {
            continue;
        };
        looks += 1;
        let listed = status.degraded_stores.iter().any(|s| s.store == "da_log");
        let above = node
            .client()
            .da_blobs(before.durable_height + 1, 64)
            .await?;
        let gauge = metric(node, "storage_degraded", &[("store", "da_log")]).await;
        let after = node.client().da_state().await?;
        let same = after.degraded.is_some() && after.durable_height == before.durable_height;
        if !(same && listed) {
            continue;
        }
        // A consistent look at a degraded node: it claims and serves only what it stored.
        anyhow::ensure!(
            !before.synced && before.height == before.durable_height,
            "degraded node: synced {}, height {}, durable {}",
            before.synced,
            before.height,
            before.durable_height
        );
        anyhow::ensure!(
            above.is_empty(),
            "da blobs serves heights above the durable tip {}: {:?}",
            before.durable_height,
            above.iter().map(|b| b.height).collect::<Vec<_>>()
        );
        anyhow::ensure!(
            gauge == 1.0,
            "storage_degraded{{store=\"da_log\"}} = {gauge}"
        );
        anyhow::ensure!(
            d.error.to_lowercase().contains("space"),
            "the error should name the cause: {d:?}"
        );
        if before.height < network_tip.height {
            break (before, network_tip);
        }
    };
    eprintln!(
        "[disk-full] {NODE} degraded after {:.1} s at durable height {} (network at {}): {:?}",
        start.elapsed().as_secs_f64(),
        seen.durable_height,
        network_tip.height,
        seen.degraded
    );
    anyhow::ensure!(
        metric(node, "storage_write_errors_total", &[("store", "da_log")]).await >= 1.0,
        "no write error counted"
    );

    // The disk stays full for a while: the retries (after 1 s, then 2 s more) fail or, when
    // redb finds room in pages its file already holds, store some kept blobs; at every
    // look a degraded node claims only what it stored.
    let full_until = Instant::now() + Duration::from_secs(4);
    let mut network_tip = network_tip;
    let mut degraded_looks = 0;
    while Instant::now() < full_until {
        if let Some(part) = events.next() {
            coordinator.da_publish(part).await?;
            network_tip = da_tip(net.node("coordinator")).await?;
        }
        let st = node.client().da_state().await?;
        if st.degraded.is_some() {
            degraded_looks += 1;
            anyhow::ensure!(
                !st.synced && st.height == st.durable_height && st.height < network_tip.height,
                "degraded node on a full disk: synced {}, height {}, durable {}, network {}",
                st.synced,
                st.height,
                st.durable_height,
                network_tip.height
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let failed = metric(node, "storage_write_errors_total", &[("store", "da_log")]).await;
    eprintln!(
        "[disk-full] {degraded_looks} degraded looks while full, {failed} failed writes so far"
    );

    // Space returns (the tmpfs is grown, the filler stays): the node recovers by itself
    // and catches up.
    tmpfs.as_ref().map_or(Ok(()), |t| t.resize(GROWN_SIZE))?;
    let freed = Instant::now();
    wait_da_equal(&[node], &network_tip, Duration::from_secs(40)).await?;
    let st = node.client().status().await?;
    anyhow::ensure!(
        st.degraded_stores.is_empty(),
        "still degraded after catching up: {:?}",
        st.degraded_stores
    );
    let view = node.client().da_state().await?;
    anyhow::ensure!(
        view.degraded.is_none() && view.durable_height == network_tip.height,
        "after recovery: degraded {:?}, durable {} of {}",
        view.degraded,
        view.durable_height,
        network_tip.height
    );
    anyhow::ensure!(
        metric(node, "storage_degraded", &[("store", "da_log")]).await == 0.0,
        "storage_degraded{{store=\"da_log\"}} still 1"
    );
    eprintln!(
        "[disk-full] {NODE} recovered {:.1} s after the tmpfs was grown",
        freed.elapsed().as_secs_f64()
    );
    // Logged once per degraded run (error; warn for a relapse soon after a recovery) and
    // once per recovery (info), not per retry.
    let mut errors = log_matches(node, offset, Some("ERROR"), "cannot write the DA log");
    errors.extend(log_matches(
        node,
        offset,
        Some("WARN"),
        "DA log writes fail again",
    ));
    let recovered = log_matches(node, offset, Some("INFO"), "DA log writes recovered");
    let failed = metric(node, "storage_write_errors_total", &[("store", "da_log")]).await;
    anyhow::ensure!(
        !errors.is_empty() && errors.len() == recovered.len(),
        "{} error lines for {} recoveries ({failed} failed writes):\n{errors:#?}\n{recovered:#?}",
        errors.len(),
        recovered.len()
    );
    eprintln!(
        "[disk-full] {} degraded run(s), {failed} failed writes",
        errors.len()
    );
    // The recovered node keeps up with new blobs.
    for part in events.by_ref().take(2) {
        coordinator.da_publish(part).await?;
    }
    let tip = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &tip, WAIT).await?;
    net.node_mut(NODE).stop().await?;
    if let Some(t) = tmpfs.as_mut() {
        t.unmount();
    }
    net.pass();
    Ok(())
}

/// The DA authority on a full disk: the coordinator (on a tmpfs holding its key, cookie,
/// peers.dat and DA log) seals a blob it cannot store. The publisher is told; the node
/// reports `da_log` degraded, stays at its durable tip and seals nothing more while the
/// disk is full (events posted meanwhile wait); once the tmpfs is grown it stores the kept
/// blob, seals the waiting events on top of it and the network converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_on_a_full_disk_seals_nothing_until_space_returns() -> anyhow::Result<()> {
    if !is_root() {
        eprintln!("[disk-full-coordinator] skipped: mounting a tmpfs needs root");
        return Ok(());
    }
    // Declared before the net: dropped (unmounted) after the daemons were killed.
    let mut tmpfs: Tmpfs;
    let mut net = TestNet::new("disk-full-coordinator").await?;
    tmpfs = data_dir_on_tmpfs(&net, "coordinator")?;
    let cfg = net.da_config("coordinator", 44)?;
    let names = net.start_da_net(44, 1, &cfg).await?;
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, 8000);
    let mut events = events.chunks(256);
    let coordinator = net.node("coordinator");
    let storage = net.node("storage-1");
    let client = coordinator.client_with_timeout(Duration::from_secs(60));
    for part in events.by_ref().take(2) {
        client.da_publish(part).await?;
    }
    let tip = da_tip(coordinator).await?;
    wait_da_equal(&net.nodes(), &tip, WAIT).await?;

    let offset = log_offset(coordinator);
    let filled = fill_to_the_brim(&tmpfs.path.join("filler"))?;
    eprintln!("[disk-full-coordinator] tmpfs filled with {filled} bytes at {tip}");
    // Publish until a publish is refused because its blob could not be stored.
    let start = Instant::now();
    let failed_height = loop {
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(20),
            "no publish failed on the full disk\n{}",
            da_log_lines(coordinator, 30)
        );
        let Some(part) = events.next() else {
            anyhow::bail!("ran out of events");
        };
        match client.da_publish(part).await {
            Ok(_) => continue,
            Err(e) => {
                let e = e.to_string();
                anyhow::ensure!(e.contains("could not store blob"), "unexpected error: {e}");
                let st = coordinator.client().da_state().await?;
                eprintln!("[disk-full-coordinator] publish refused: {e}");
                break st.durable_height + 1;
            }
        }
    };
    // Events posted now wait: nothing is sealed while the log is degraded.
    let waiting: Vec<_> = events.next().map(<[_]>::to_vec).unwrap_or_default();
    let background = coordinator.client_with_timeout(Duration::from_secs(60));
    let publish = tokio::spawn(async move { background.da_publish(&waiting).await });
    let full_until = Instant::now() + Duration::from_secs(4);
    let mut looks = 0;
    while Instant::now() < full_until {
        let st = coordinator.client().da_state().await?;
        if st.degraded.is_some() {
            looks += 1;
            anyhow::ensure!(
                !st.synced && st.height == st.durable_height && st.height < failed_height,
                "degraded coordinator: synced {}, height {}, durable {}, failed blob {failed_height}",
                st.synced,
                st.height,
                st.durable_height
            );
            let status = coordinator.client().status().await?;
            anyhow::ensure!(
                status.degraded_stores.iter().any(|d| d.store == "da_log"),
                "status does not list the degraded DA log: {:?}",
                status.degraded_stores
            );
        }
        // The storage node got the failed blob by gossip, and nothing after it.
        let other = da_tip(storage).await?;
        anyhow::ensure!(
            other.height <= failed_height,
            "the coordinator sealed {} while its log was degraded at {failed_height}",
            other.height
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::ensure!(looks > 0, "the coordinator never looked degraded");
    anyhow::ensure!(!publish.is_finished(), "events were sealed on a full disk");

    tmpfs.resize(GROWN_SIZE)?;
    let published = tokio::time::timeout(Duration::from_secs(40), publish)
        .await
        .map_err(|_| anyhow::anyhow!("the waiting events were not sealed after the disk grew"))??
        .map_err(|e| anyhow::anyhow!("waiting publish: {e}"))?;
    anyhow::ensure!(
        published
            .heights
            .first()
            .is_some_and(|h| *h > failed_height),
        "the waiting events went into {:?}, not after the kept blob {failed_height}",
        published.heights
    );
    let tip = da_tip(coordinator).await?;
    wait_da_equal(&net.nodes(), &tip, WAIT).await?;
    let st = coordinator.client().status().await?;
    anyhow::ensure!(
        st.degraded_stores.is_empty(),
        "still degraded: {:?}",
        st.degraded_stores
    );
    let mut errors = log_matches(
        coordinator,
        offset,
        Some("ERROR"),
        "cannot write the DA log",
    );
    errors.extend(log_matches(
        coordinator,
        offset,
        Some("WARN"),
        "DA log writes fail again",
    ));
    let recovered = log_matches(coordinator, offset, Some("INFO"), "DA log writes recovered");
    anyhow::ensure!(
        !errors.is_empty() && errors.len() == recovered.len(),
        "{} error lines for {} recoveries",
        errors.len(),
        recovered.len()
    );
    eprintln!("[disk-full-coordinator] recovered; network at {tip}");
    net.node_mut("coordinator").stop().await?;
    net.node_mut("storage-1").stop().await?;
    tmpfs.unmount();
    net.pass();
    Ok(())
}
