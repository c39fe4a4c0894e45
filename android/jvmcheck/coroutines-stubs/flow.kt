// Minimal stand-ins with the signatures of kotlinx.coroutines.flow (1.8) used by the shell.
package kotlinx.coroutines.flow
interface StateFlow<out T> { val value: T }
interface MutableStateFlow<T> : StateFlow<T> { override var value: T; fun compareAndSet(expect: T, update: T): Boolean }
private class Impl<T>(override var value: T) : MutableStateFlow<T> {
    override fun compareAndSet(expect: T, update: T): Boolean { if (value == expect) { value = update; return true }; return false }
}
@Suppress("FunctionName") fun <T> MutableStateFlow(value: T): MutableStateFlow<T> = Impl(value)
fun <T> MutableStateFlow<T>.asStateFlow(): StateFlow<T> = this
inline fun <T> MutableStateFlow<T>.update(function: (T) -> T) { while (true) { val prev = value; if (compareAndSet(prev, function(prev))) return } }
