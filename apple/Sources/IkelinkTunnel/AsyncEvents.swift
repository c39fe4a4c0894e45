import IkelinkFFI

/// Ikelink's events as an `AsyncStream`, for code that drives a `VpnClient` itself (the provider uses
/// `handle(event:)`): pass the listener to `VpnClient(listener:...)` and `for await event in listener.events`.
/// Events keep their order; the stream ends when the listener is released.
public final class AsyncEventListener: VpnListener, @unchecked Sendable {
    public let events: AsyncStream<VpnEvent>
    private let continuation: AsyncStream<VpnEvent>.Continuation

    public init(bufferingPolicy: AsyncStream<VpnEvent>.Continuation.BufferingPolicy = .unbounded) {
        (events, continuation) = AsyncStream.makeStream(of: VpnEvent.self, bufferingPolicy: bufferingPolicy)
    }

    public func onEvent(event: VpnEvent) throws {
        continuation.yield(event)
    }

    deinit {
        continuation.finish()
    }
}
