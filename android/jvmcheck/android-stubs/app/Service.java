package android.app;
public abstract class Service extends android.content.ContextWrapper {
    public static final int START_NOT_STICKY = 2;
    public static final int STOP_FOREGROUND_REMOVE = 1;
    public void onCreate() {}
    public int onStartCommand(android.content.Intent intent, int flags, int startId) { return 0; }
    public void onDestroy() {}
    public final void stopSelf() {}
    public final void stopSelf(int startId) {}
    public final void startForeground(int id, Notification notification) {}
    public final void stopForeground(int flags) {}
}
