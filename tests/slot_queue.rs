//! The line of callers waiting for a slot: callers of a key that gets a
//! session are handed it, an eviction is never wasted, and a caller that
//! leaves the line passes its wake-up on. Deterministic: current-thread
//! runtime, paused clock, `OwnerRuntime::Caller`, in-process servers.

mod common;

use std::time::Duration;

use common::{in_process, increment};
use mcp_session_pool::{CloseReason, Error, OwnerRuntime, ServerConfig, Session, SessionPool};

fn pool(max: usize) -> SessionPool {
    SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .max_sessions(max)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn until_waiting(pool: &SessionPool, n: usize) {
    for _ in 0..1000 {
        if pool.status().waiting == n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("waiting != {n}: {:?}", pool.status());
}

/// Two callers of one key queue at the bound. The first gets the slot and
/// creates the key's session; the second must get that session, not wait
/// for a slot of its own until `PoolFull`.
#[tokio::test(start_paused = true)]
async fn second_caller_in_line_of_a_key_gets_the_session_made_for_the_first() {
    let (cfg, _) = in_process();
    let pool = pool(1);
    let held = pool.get_session("srv", "a", &cfg).await.unwrap();
    let h1 = spawn_get(&pool, &cfg, "b");
    until_waiting(&pool, 1).await;
    let h2 = spawn_get(&pool, &cfg, "b");
    until_waiting(&pool, 2).await;
    drop(held);
    // H1 gets "b" and keeps it for a long tool call.
    let s1 = h1.await.unwrap().expect("h1 gets b");
    let r2 = h2.await.unwrap();
    eprintln!("status: {:?}", pool.status());
    match r2 {
        Ok(s2) => assert_eq!(s2.generation(), s1.generation()),
        Err(e) => panic!(
            "caller for live key `b` got {e:?} (b live, gen {})",
            s1.generation()
        ),
    }
}

/// The same, with the first caller letting go at once: the second must not
/// evict its own key's session (and the state on it) for a new one.
#[tokio::test(start_paused = true)]
async fn second_caller_in_line_never_evicts_its_own_keys_session() {
    let (cfg, connects) = in_process();
    let pool = pool(1);
    let held = pool.get_session("srv", "a", &cfg).await.unwrap();
    let h1 = tokio::spawn({
        let (pool, cfg) = (pool.clone(), cfg.clone());
        async move {
            let s = pool.get_session("srv", "b", &cfg).await?;
            increment(&s).await; // state on b
            Ok::<_, Error>(s.generation())
        }
    });
    until_waiting(&pool, 1).await;
    let h2 = spawn_get(&pool, &cfg, "b");
    until_waiting(&pool, 2).await;
    drop(held);
    let g1 = h1.await.unwrap().unwrap();
    let s2 = h2.await.unwrap().unwrap();
    eprintln!(
        "g1 {g1} g2 {} replaced {:?} connects {} evicted {}",
        s2.generation(),
        s2.replaced(),
        connects.load(std::sync::atomic::Ordering::SeqCst),
        pool.status().closed(CloseReason::Evicted)
    );
    assert_eq!(
        s2.generation(),
        g1,
        "b was evicted and recreated for a caller of b"
    );
    assert_eq!(increment(&s2).await, 2);
}

/// Two slots free up at once and both callers in line want key `b`: one
/// session is made, so one session is evicted, not two.
#[tokio::test(start_paused = true)]
async fn two_callers_of_one_key_cost_one_eviction() {
    let (cfg, _) = in_process();
    let pool = pool(2);
    let a = pool.get_session("srv", "a", &cfg).await.unwrap();
    let x = pool.get_session("srv", "x", &cfg).await.unwrap();
    let spawn_b = || {
        let (pool, cfg) = (pool.clone(), cfg.clone());
        tokio::spawn(async move { pool.get_session("srv", "b", &cfg).await })
    };
    let h1 = spawn_b();
    until_waiting(&pool, 1).await;
    let h2 = spawn_b();
    until_waiting(&pool, 2).await;
    drop(a);
    drop(x);
    let s1 = h1.await.unwrap().unwrap();
    let s2 = h2.await.unwrap().unwrap();
    assert_eq!(s1.generation(), s2.generation());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let st = pool.status();
    eprintln!("status after: {st:?}");
    assert_eq!(
        st.closed(CloseReason::Evicted),
        1,
        "one new session needed one slot, yet {} sessions were evicted (live {})",
        st.closed(CloseReason::Evicted),
        st.live
    );
}

/// The head of the line is woken by a release, then cancelled before it
/// runs: the wake-up must reach the next caller, which an idle session can
/// be evicted for.
#[tokio::test(start_paused = true)]
async fn a_woken_caller_that_leaves_passes_the_wake_up_on() {
    let (cfg, _) = in_process();
    let pool = pool(1);
    let held = pool.get_session("srv", "a", &cfg).await.unwrap();
    let mut f1 = Box::pin(pool.get_session("srv", "b", &cfg));
    // Poll once: it queues.
    tokio::select! {
        biased;
        r = &mut f1 => panic!("f1 finished: {r:?}"),
        () = std::future::ready(()) => {}
    }
    assert_eq!(pool.status().waiting, 1);
    let h2 = spawn_get(&pool, &cfg, "c");
    until_waiting(&pool, 2).await;
    drop(held); // "a" idle: wakes the head (f1)
    drop(f1); // the head gives up (e.g. the caller's own timeout) before running
    let t0 = tokio::time::Instant::now();
    let r = h2.await.unwrap();
    eprintln!(
        "after {:?}: {:?} status {:?}",
        t0.elapsed(),
        r.as_ref().map(|s| s.generation()),
        pool.status()
    );
    assert!(r.is_ok(), "c got {r:?} though `a` was idle and evictable");
}

/// `get_session("srv", scope)` as a task of its own.
fn spawn_get(
    pool: &SessionPool,
    cfg: &ServerConfig,
    scope: &'static str,
) -> tokio::task::JoinHandle<Result<Session, Error>> {
    let (pool, cfg) = (pool.clone(), cfg.clone());
    tokio::spawn(async move { pool.get_session("srv", scope, &cfg).await })
}
