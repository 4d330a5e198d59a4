//! Builds the running gateway from a validated configuration and supervises it: HTTP
//! listeners, the broker connection with its ingest and delivery workers, reconnection with
//! backoff after broker failures, and the drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::broker;
use crate::config::CompiledConfig;
use crate::runtime::metrics as m;
use crate::runtime::state::AppState;
use crate::runtime::{delivery, http, ingest};
use crate::store::Store;

/// The bound addresses of a started gateway (port 0 in tests resolves here).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub ingest: SocketAddr,
    pub admin: SocketAddr,
}

/// Runs the gateway until `shutdown` is cancelled, then drains and returns.
///
/// # Errors
///
/// The store cannot be opened or a listener cannot be bound; broker failures are not errors
/// (the gateway keeps reconnecting).
pub async fn run(
    config: CompiledConfig,
    shutdown: CancellationToken,
    bound_tx: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = Store::open(&config.process.store.url, &config.data_dir()).await?;
    let prometheus = crate::runtime::metrics::install();
    metrics::gauge!(m::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    if let Some(year) = config.calendar.last_year_loaded() {
        metrics::gauge!(m::CALENDAR_LAST_YEAR).set(f64::from(year));
    }
    let state = Arc::new(AppState {
        config: config.clone(),
        store,
        broker_up: false.into(),
        broker_blocked: false.into(),
        publisher: tokio::sync::RwLock::new(None),
        inspector: tokio::sync::RwLock::new(None),
        prometheus,
        in_flight: Default::default(),
        breakers: AppState::breakers_for(&config),
        clock: Default::default(),
    });

    let ingest_listener = TcpListener::bind(&config.process.http.listen).await?;
    let admin_listener = TcpListener::bind(&config.process.admin.listen).await?;
    let bound =
        Bound { ingest: ingest_listener.local_addr()?, admin: admin_listener.local_addr()? };
    info!(ingest = %bound.ingest, admin = %bound.admin, store = state.store.backend(), "Listening.");
    let ingest_server = tokio::spawn(
        axum::serve(ingest_listener, http::ingest_router(state.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    let admin_server = tokio::spawn(
        axum::serve(admin_listener, http::admin_router(state.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    if let Some(tx) = bound_tx {
        let _ = tx.send(bound);
    }
    let retention = tokio::spawn(crate::runtime::retention::run(state.clone(), shutdown.clone()));

    let mut backoff = Duration::from_millis(500);
    let mut first = true;
    while !shutdown.is_cancelled() {
        match broker::connect(&config, "credgate").await {
            Ok(connection) => {
                if !first {
                    metrics::counter!(m::RECONNECTS).increment(1);
                }
                first = false;
                backoff = Duration::from_millis(500);
                if let Err(error) = serve_connection(&state, connection, &shutdown).await {
                    warn!(%error, "Broker session ended.");
                }
            }
            Err(error) => {
                warn!(%error, retry_in_ms = backoff.as_millis() as u64, "Cannot reach the broker.");
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(backoff) => {}
        }
        // Capped low: after a broker restart the gateway should be back within seconds.
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    let _ = ingest_server.await;
    let _ = admin_server.await;
    let _ = retention.await;
    info!("Gateway stopped.");
    Ok(())
}

/// One broker session: topology, publisher, workers; returns when the connection fails or
/// shutdown is requested, after the workers stopped.
async fn serve_connection(
    state: &Arc<AppState>,
    connection: lapin::Connection,
    shutdown: &CancellationToken,
) -> Result<(), broker::BrokerError> {
    let session = shutdown.child_token();
    let mut events = connection.events_listener();
    let setup = connection.create_channel().await?;
    broker::declare_topology(&setup, &state.config).await?;
    declare_sink_exchanges(&setup, &state.config).await?;
    *state.publisher.write().await = Some(broker::confirm_channel(&connection).await?);
    *state.inspector.write().await = Some(setup);
    state.broker_up.store(true, Ordering::Relaxed);
    state.broker_blocked.store(false, Ordering::Relaxed);
    metrics::gauge!(m::CONNECTION_UP).set(1.0);
    info!("Connected to the broker; topology declared.");

    let tracker = tokio_util::task::TaskTracker::new();
    let connection = Arc::new(connection);
    let roles = &state.config.process.runtime.roles;
    let (run_ingest, run_delivery) =
        (roles.iter().any(|r| r == "ingest"), roles.iter().any(|r| r == "delivery"));
    for adapter in state.config.adapters.values() {
        if run_ingest
            && adapter.inbound_transports.iter().any(|t| t == "amqp")
            && !adapter.inbound.is_empty()
        {
            let (state, connection, session, id) =
                (state.clone(), connection.clone(), session.clone(), adapter.id.clone());
            tracker.spawn(async move {
                if let Err(error) =
                    ingest::consume_adapter(state, &connection, id.clone(), session.clone()).await
                {
                    warn!(adapter = id, %error, "Ingest consumer stopped.");
                    session.cancel();
                }
            });
        }
        if run_delivery && adapter.destination.is_some() {
            let (state, connection, session, id) =
                (state.clone(), connection.clone(), session.clone(), adapter.id.clone());
            tracker.spawn(async move {
                if let Err(error) =
                    delivery::consume_destination(state, &connection, id.clone(), session.clone())
                        .await
                {
                    warn!(destination = id, %error, "Delivery worker stopped.");
                    session.cancel();
                }
            });
        }
    }
    if run_ingest {
        // Singleton across instances through its store lease.
        tracker.spawn(crate::runtime::lifecycle_timer::run(state.clone(), session.clone()));
    }
    tracker.close();

    // Watch the connection: blocked/unblocked (resource alarms) and errors.
    loop {
        tokio::select! {
            _ = session.cancelled() => break,
            event = events.next() => match event {
                Some(lapin::Event::ConnectionBlocked(reason)) => {
                    warn!(reason, "Broker blocked publishing (resource alarm); pushes answer 503.");
                    state.broker_blocked.store(true, Ordering::Relaxed);
                }
                Some(lapin::Event::ConnectionUnblocked) => {
                    info!("Broker unblocked publishing.");
                    state.broker_blocked.store(false, Ordering::Relaxed);
                }
                Some(lapin::Event::Error(error)) => {
                    error!(%error, "Broker connection failed.");
                    session.cancel();
                    break;
                }
                Some(_) => {}
                None => {
                    session.cancel();
                    break;
                }
            }
        }
    }
    // Readiness drops first so pushes get 503 instead of waiting on a dead channel.
    state.broker_up.store(false, Ordering::Relaxed);
    metrics::gauge!(m::CONNECTION_UP).set(0.0);
    tracker.wait().await;
    // Channels are closed one by one before the connection: a channel dropped here would be
    // closing in the background while the connection closes, which lapin reports as an error.
    let publisher = state.publisher.write().await.take();
    let inspector = state.inspector.write().await.take();
    for channel in publisher.into_iter().chain(inspector) {
        let _ = channel.close(200, "credgate stopping".into()).await;
    }
    let _ = connection.close(200, "credgate stopping".into()).await;
    Ok(())
}

/// Platform exchanges that AMQP sinks publish to are declared so a fresh broker works; the
/// platform binds its own queues.
async fn declare_sink_exchanges(
    channel: &lapin::Channel,
    config: &CompiledConfig,
) -> Result<(), broker::BrokerError> {
    for adapter in config.adapters.values() {
        if let Some(amqp) = adapter.destination.as_ref().and_then(|d| d.raw.amqp.as_ref()) {
            channel
                .exchange_declare(
                    amqp.exchange.as_str().into(),
                    lapin::ExchangeKind::Topic,
                    lapin::options::ExchangeDeclareOptions { durable: true, ..Default::default() },
                    lapin::types::FieldTable::default(),
                )
                .await?;
        }
    }
    Ok(())
}
