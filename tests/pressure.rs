//! The pool under pressure: callers waiting at the bound are served in
//! order, a session made for waiting callers reaches them, closes wait for
//! every server of their keys, and randomized operations keep the
//! invariants.

mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{Rng, Servers, in_process, increment};
use mcp_session_pool::{
    CloseReason, Error, OwnerRuntime, SessionPool, rmcp::model::CallToolRequestParams,
};
use parking_lot::Mutex;

/// One session held busy all along at a bound of 2; two callers loop
/// get + call + drop on keys `k0` and `k1`. Neither may starve, and every
/// session made must reach the caller it was made for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_at_the_bound_take_turns_and_every_session_made_is_used() {
    let (cfg, _) = in_process();
    let pool = SessionPool::builder()
        .max_sessions(2)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let held = pool.get_session("srv", "busy", &cfg).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let handed = Arc::new(Mutex::new(HashSet::new()));
    let loops: Vec<_> = ["k0", "k1"]
        .into_iter()
        .map(|scope| {
            let (pool, cfg, stop, handed) =
                (pool.clone(), cfg.clone(), stop.clone(), handed.clone());
            tokio::spawn(async move {
                let (mut served, mut worst) = (0u64, Duration::ZERO);
                while !stop.load(Ordering::Relaxed) {
                    let t0 = std::time::Instant::now();
                    let session = pool.get_session("srv", scope, &cfg).await?;
                    worst = worst.max(t0.elapsed());
                    handed.lock().insert(session.generation());
                    increment(&session).await;
                    served += 1;
                }
                Ok::<_, Error>((served, worst))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for handle in loops {
        results.push(handle.await.unwrap().expect("no caller may get PoolFull"));
    }
    let created = pool.status().created - 1; // the held one
    let handed = handed.lock().len() as u64;
    eprintln!(
        "k0: {} calls, worst wait {:?}; k1: {} calls, worst wait {:?}; \
         sessions created {created}, handed out {handed}",
        results[0].0, results[0].1, results[1].0, results[1].1
    );
    for (served, worst) in &results {
        assert!(*served >= 10, "a key starved: {results:?}");
        assert!(*worst < Duration::from_secs(1), "{results:?}");
    }
    assert_eq!(created, handed, "a session was made for nobody");
    drop(held);
    let status = pool.status();
    assert!(status.live + status.in_flight <= 2, "{status:?}");
    assert_eq!(pool.close_all().await, status.live + status.in_flight);
}

/// A creation joined by several callers is leased to each of them before it
/// can be evicted, even at a bound where other callers wait.
#[tokio::test(start_paused = true)]
async fn a_session_made_for_waiting_callers_reaches_all_of_them() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (slow, _) = common::gated_in_process(gate.clone());
    let (fast, _) = in_process();
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .max_sessions(1)
        .build()
        .unwrap();
    let joiners: Vec<_> = (0..3)
        .map(|_| {
            let (pool, slow) = (pool.clone(), slow.clone());
            tokio::spawn(async move { pool.get_session("srv", "a", &slow).await })
        })
        .collect();
    tokio::task::yield_now().await;
    // Another key waits for the only slot while "a" is being made.
    let other = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get_session("srv", "b", &fast).await }
    });
    tokio::task::yield_now().await;
    assert_eq!(pool.status().waiting, 1);
    gate.add_permits(1);
    let mut generations = HashSet::new();
    for joiner in joiners {
        let session = joiner.await.unwrap().expect("the session made for it");
        generations.insert(session.generation());
        drop(session);
    }
    assert_eq!(generations.len(), 1, "one creation for all three");
    // Once all three let go, the waiting key gets the slot.
    let b = other.await.unwrap().unwrap();
    assert_eq!(increment(&b).await, 1);
    assert_eq!(pool.status().created, 2);
    assert_eq!(pool.status().closed(CloseReason::Evicted), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_a_server_of_its_key_that_is_already_closing() {
    let servers = Servers::new("close_waits_closing");
    let cfg = servers.config(&["--ignore-eof"]);
    let pool = SessionPool::builder()
        .max_sessions(1)
        .close_timeout(Duration::from_millis(600))
        .build()
        .unwrap();
    let a = pool
        .get_session("srv", "a", &cfg)
        .await
        .unwrap()
        .server_pid()
        .unwrap();
    // "b" evicts "a", whose server ignores EOF and takes a while to go.
    let b = tokio::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move { pool.get_session("srv", "b", &cfg).await }
    });
    while pool.status().closing == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(common::process_exists(a, "test_server"));
    assert_eq!(pool.close_session("srv", "a").await, 0);
    assert!(
        !common::process_exists(a, "test_server"),
        "close_session returned while its key's server ran"
    );
    let b = b.await.unwrap().unwrap();
    drop(b);
    assert_eq!(pool.close_all().await, 1);
    servers.assert_none_alive();
}

#[tokio::test(start_paused = true)]
async fn state_loss_is_told_once_to_the_first_handle() {
    let (cfg, _) = in_process();
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .unwrap();
    drop(pool.get_session("srv", "t", &cfg).await.unwrap());
    pool.close_session("srv", "t").await;
    // Two callers join the replacement's creation: one of them is told.
    let (first, second) = tokio::join!(
        pool.get_session("srv", "t", &cfg),
        pool.get_session("srv", "t", &cfg)
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.generation(), second.generation());
    let told: Vec<_> = [first.replaced(), second.replaced()]
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(told, [CloseReason::Explicit]);
    let teller = if first.replaced().is_some() {
        &first
    } else {
        &second
    };
    assert_eq!(teller.clone().replaced(), Some(CloseReason::Explicit));
    drop((first, second));
    let later = pool.get_session("srv", "t", &cfg).await.unwrap();
    assert_eq!(later.replaced(), None, "told again on a later call");
}

/// What the randomized run saw of one key.
#[derive(Default)]
struct Seen {
    /// Generations observed for the key.
    generations: HashSet<u64>,
    /// Generations known to be over: closed by `close_*` or reported ended.
    over: HashSet<u64>,
}

/// Random operations from several tasks, cancelled at random points: get
/// and call, hold across other operations, close a key, a scope or all.
/// After every operation: live + creating ≤ the bound, no session known to
/// be over is handed out again, and every operation returned within a bound.
async fn random_operations(seed: u64, tasks: usize, ops: usize, stdio: Option<&Servers>) {
    const MAX: usize = 3;
    const OP_BOUND: Duration = Duration::from_secs(20);
    let (cfg, _) = in_process();
    let cfg = match stdio {
        Some(servers) => servers.config(&[]),
        None => cfg,
    };
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .max_sessions(MAX)
        .connect_timeout(Duration::from_secs(2))
        .close_timeout(Duration::from_secs(1))
        .failure_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let seen: Arc<Mutex<HashMap<(u64, u64), Seen>>> = Arc::default();
    let stats = Arc::new(Mutex::new((0u64, HashSet::new())));
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let (pool, cfg, seen, stats) = (pool.clone(), cfg.clone(), seen.clone(), stats.clone());
            let mut rng = Rng::new(seed ^ (t as u64 + 1).wrapping_mul(0x9e37));
            tokio::spawn(async move {
                let mut held = Vec::new();
                for i in 0..ops {
                    let (srv, scp) = (rng.below(2), rng.below(3));
                    let (server, scope) = (format!("s{srv}"), format!("t{scp}"));
                    let op = rng.below(10);
                    let keep = rng.below(3) == 0;
                    let close_all = rng.below(4) == 0;
                    let cancel = rng.below(4) == 0;
                    let cancel_after = Duration::from_micros(rng.below(3000));
                    let work = async {
                        match op {
                            // Get, call, and maybe keep the handle a while.
                            0..=5 => match pool.get_session(&server, &scope, &cfg).await {
                                Ok(session) => {
                                    let g = session.generation();
                                    {
                                        let mut seen = seen.lock();
                                        let s = seen.entry((srv, scp)).or_default();
                                        assert!(
                                            !s.over.contains(&g),
                                            "seed {seed}: generation {g} of {server}/{scope} came back"
                                        );
                                        s.generations.insert(g);
                                        let mut stats = stats.lock();
                                        stats.1.insert(g);
                                    }
                                    match session
                                        .call_tool(mcp_session_pool::rmcp::model::CallToolRequestParams::new("increment"))
                                        .await
                                    {
                                        Ok(_) => {}
                                        Err(e) if e.session_ended().is_some() => {
                                            seen.lock().entry((srv, scp)).or_default().over.insert(g);
                                        }
                                        Err(e) => panic!("seed {seed}: call: {e:?}"),
                                    }
                                    if keep {
                                        held.push(session);
                                    }
                                }
                                Err(Error::ClosedWhileConnecting { .. } | Error::PoolFull { .. }) => {}
                                Err(e) => panic!("seed {seed}: get_session: {e:?}"),
                            },
                            6 => drop(held.pop()),
                            7 => {
                                let before: Vec<u64> =
                                    seen.lock().entry((srv, scp)).or_default().generations.iter().copied().collect();
                                pool.close_session(&server, &scope).await;
                                seen.lock().entry((srv, scp)).or_default().over.extend(before);
                            }
                            8 => {
                                pool.close_scope(&scope).await;
                            }
                            _ => {
                                if close_all {
                                    pool.close_all().await;
                                }
                            }
                        }
                    };
                    // Cancelled at a random point now and then.
                    let t0 = tokio::time::Instant::now();
                    if cancel {
                        let _ = tokio::time::timeout(cancel_after, work).await;
                    } else {
                        tokio::time::timeout(OP_BOUND, work)
                            .await
                            .unwrap_or_else(|_| panic!("seed {seed}: op {i} ({op}) took over {OP_BOUND:?}"));
                    }
                    assert!(t0.elapsed() <= OP_BOUND);
                    let status = pool.status();
                    assert!(
                        status.live + status.in_flight <= MAX,
                        "seed {seed}: {status:?}"
                    );
                    stats.lock().0 += 1;
                    if rng.below(8) == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        if let Err(e) = worker.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    pool.close_all().await;
    let status = pool.status();
    assert_eq!(
        (
            status.live,
            status.in_flight,
            status.closing,
            status.waiting
        ),
        (0, 0, 0, 0),
        "seed {seed}: {status:?}"
    );
    let (done, handed) = &*stats.lock();
    eprintln!(
        "seed {seed}: {done} operations, {} sessions created, {} handed out",
        status.created,
        handed.len()
    );
    if let Some(servers) = stdio {
        servers.assert_none_alive();
    }
}

#[tokio::test(start_paused = true)]
async fn random_operations_on_in_process_servers_keep_the_invariants() {
    let seed = Rng::seed();
    for round in 0..4 {
        random_operations(seed.wrapping_add(round), 8, 300, None).await;
    }
}

// One thread: an observation and the check of it happen with no other task
// in between, so a close cannot slip between them.
#[tokio::test]
async fn random_operations_on_stdio_servers_keep_the_invariants() {
    let servers = Servers::new("random_stdio");
    random_operations(Rng::seed(), 6, 60, Some(&servers)).await;
}

/// Handles cloned, sent to other tasks and dropped on two threads, at a
/// bound of one session and an idle timeout of a few milliseconds: a
/// session is busy exactly while a handle of it lives. Counted too low, a
/// held session is evicted or expires and a call on it fails; counted too
/// high, or a last release lost, the other key never gets the slot and
/// `get_session` times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloned_handles_keep_a_session_busy_exactly_while_they_live() {
    const TASKS: u64 = 4;
    const OPS: usize = 150;
    let seed = Rng::seed();
    let (cfg, _) = in_process();
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .max_sessions(1)
        .idle_timeout(Some(Duration::from_millis(2)))
        .connect_timeout(Duration::from_secs(10))
        .failure_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    let workers: Vec<_> = (0..TASKS)
        .map(|t| {
            let (pool, cfg) = (pool.clone(), cfg.clone());
            let mut rng = Rng::new(seed ^ (t + 1).wrapping_mul(0x9e37));
            tokio::spawn(async move {
                let mut clones = Vec::new();
                for i in 0..OPS {
                    let scope = ["a", "b"][rng.below(2) as usize];
                    let session = pool
                        .get_session("srv", scope, &cfg)
                        .await
                        .unwrap_or_else(|e| panic!("seed {seed}: op {i}: get_session: {e}"));
                    for _ in 0..rng.below(4) {
                        let (clone, yields) = (session.clone(), rng.below(4));
                        clones.push(tokio::spawn(async move {
                            for _ in 0..yields {
                                tokio::task::yield_now().await;
                            }
                            clone
                                .call_tool(CallToolRequestParams::new("increment"))
                                .await
                        }));
                    }
                    if rng.below(2) == 0 {
                        tokio::task::yield_now().await;
                    }
                    if let Err(e) = session
                        .call_tool(CallToolRequestParams::new("increment"))
                        .await
                    {
                        panic!("seed {seed}: op {i}: a held session ended: {e}");
                    }
                    drop(session);
                    let status = pool.status();
                    assert!(
                        status.live + status.in_flight <= 1,
                        "seed {seed}: {status:?}"
                    );
                }
                for clone in clones {
                    if let Err(e) = clone.await.unwrap() {
                        panic!("seed {seed}: a session held by a clone ended: {e}");
                    }
                }
            })
        })
        .collect();
    let all = async {
        for worker in workers {
            if let Err(e) = worker.await {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .unwrap_or_else(|_| panic!("seed {seed}: stuck"));
    let created = pool.status().created;
    pool.close_all().await;
    let status = pool.status();
    assert_eq!(
        (status.live, status.in_flight, status.closing),
        (0, 0, 0),
        "seed {seed}"
    );
    eprintln!(
        "seed {seed}: {} gets, {created} sessions made",
        TASKS as usize * OPS
    );
    assert!(created > 1, "seed {seed}: the keys never took turns");
}
