package android.content;
public abstract class Context {
    public final <T> T getSystemService(Class<T> serviceClass) { return null; }
    public abstract ComponentName startService(Intent service);
}
